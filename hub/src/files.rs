//! Files that must never be seen half-written (L0): generated Asterisk config, the TLS key
//! and certificate, the cookie key.
//!
//! Write to a temporary file in the same directory, fsync it, rename it over the target,
//! fsync the directory. A crash at any point leaves the old file whole or the new one whole;
//! a failed write removes its temporary file.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `path` atomically with `contents` and file mode `mode` (Unix).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_with(path, mode, |f| f.write_all(contents))
}

/// Writes `path` atomically only when its contents differ; returns whether it wrote.
pub fn write_if_changed(path: &Path, contents: &[u8], mode: u32) -> io::Result<bool> {
    match std::fs::read(path) {
        Ok(old) if old == contents => Ok(false),
        _ => write_atomic(path, contents, mode).map(|()| true),
    }
}

/// Like [`write_atomic`], with the contents produced by `fill` (so a failure half-way can be
/// tested, and large outputs streamed).
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
) -> io::Result<()> {
    remove_stale_temps(path);
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = open_new(&tmp, mode)?;
        fill(&mut f)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename itself durable.
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes temporary files of `path` left by writers that died before their rename (a killed
/// hub or CLI): `.<name>.tmp-<pid>-<n>` whose process no longer runs. Only where `/proc`
/// tells which processes run; a live writer's file is never touched. Best effort: a failure
/// here never fails the write.
fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !proc.join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A temporary name next to `path`, unique per process and per write (two writes of one
/// file in one process never share a temporary file).
fn temp_path(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

#[cfg(unix)]
fn open_new(path: &Path, mode: u32) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)
}

#[cfg(not(unix))]
fn open_new(path: &Path, _mode: u32) -> io::Result<std::fs::File> {
    std::fs::File::create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_fails_half_way_leaves_the_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pjsip_hub.conf");
        write_atomic(&path, b"[1001]\ntype=endpoint\n", 0o644).unwrap();
        let crash = write_atomic_with(&path, 0o644, |f| {
            f.write_all(b"[1001]\ntype=end")?; // the process "dies" mid-write
            Err(io::Error::other("simulated crash"))
        });
        assert!(crash.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"[1001]\ntype=endpoint\n", "old file whole");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind: {leftovers:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn temporary_files_of_dead_writers_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub-pjsip-users.conf");
        // pid_max is at most 2^22: this writer cannot be running. pid 1 always runs.
        let dead = dir.path().join(".hub-pjsip-users.conf.tmp-99999999-0");
        let live = dir.path().join(".hub-pjsip-users.conf.tmp-1-0");
        let other = dir.path().join(".hub-extensions.conf.tmp-99999999-0");
        for f in [&dead, &live, &other] {
            std::fs::write(f, b"half a file").unwrap();
        }
        write_atomic(&path, b"[a]\n", 0o644).unwrap();
        assert!(!dead.exists(), "a dead writer's temporary file is removed");
        assert!(live.exists(), "a running writer's file is left alone");
        assert!(other.exists(), "another file's temporaries are not this write's business");
    }

    #[test]
    fn writes_only_when_the_contents_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extensions_hub.conf");
        assert!(write_if_changed(&path, b"a", 0o644).unwrap());
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(!write_if_changed(&path, b"a", 0o644).unwrap(), "same contents: untouched");
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), before);
        assert!(write_if_changed(&path, b"b", 0o644).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"b");
    }

    #[cfg(unix)]
    #[test]
    fn keeps_the_requested_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_atomic(&path, b"k", 0o600).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
