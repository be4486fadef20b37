//! From a [`PbxPlan`] to config files on disk: [`render`] checks every value and renders the
//! three files, [`write()`] writes the ones that changed atomically, [`diff`] shows what a write
//! would change.
//!
//! ```text
//!  PbxPlan ──check/sanitize──▶ PjsipUser×N, PjsipTrunk, Dialplan ──templates──▶ RenderedConfig
//!                                                                                 │ write (atomic,
//!                                                                                 ▼ only changes)
//!                 hub-pjsip-users.conf  hub-pjsip-trunk.conf  hub-extensions.conf
//! ```
//!
//! Each user's endpoint carries `set_var=HUB_REV=<rev>`, a hash of the templates and of that
//! user's context, so the provisioning flow can ask Asterisk (`PJSIPShowEndpoint`) whether it
//! really loaded this version: a reload reports success even for a broken file.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::conf_value::ValueError;
use super::dialplan::Dialplan;
use super::pjsip::{EndpointOptions, PjsipTrunk, PjsipUser};
use super::plan::PbxPlan;
use super::templates::{TemplateName, Templates};
use crate::model::UserId;

/// Per-user endpoints, auths and AORs.
pub const USERS_FILE: &str = "hub-pjsip-users.conf";
/// The hub's own user agent.
pub const TRUNK_FILE: &str = "hub-pjsip-trunk.conf";
/// The dialplan.
pub const EXTENSIONS_FILE: &str = "hub-extensions.conf";

/// Mode of the generated files: Asterisk (another user) must read them; nobody but the hub
/// writes them.
pub const FILE_MODE: u32 = 0o644;

/// Hex characters of SHA-256 kept as a revision: enough to tell versions apart, short enough
/// to read in `pjsip show endpoint`.
pub const REVISION_LEN: usize = 16;

/// What can go wrong between a plan and the files on disk.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A plan value that may not go into config.
    #[error(transparent)]
    Invalid(#[from] ValueError),
    /// Two users (or a user and the trunk) would get the same section, extension or number.
    #[error("duplicate {what} {value:?}")]
    Duplicate {
        /// What is duplicated (`endpoint name`, `extension`…).
        what: &'static str,
        /// The value.
        value: String,
    },
    /// The override directory could not be read.
    #[error("cannot read Asterisk config templates from {}: {source}", dir.display())]
    TemplateDir {
        /// The configured directory.
        dir: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A `.hbs` file in the override directory that is none of the templates (a typo would
    /// otherwise silently leave the built-in template in use).
    #[error(
        "{} is not one of the Asterisk config templates (pjsip-user.hbs, pjsip-trunk.hbs, extensions.hbs)",
        file.display()
    )]
    UnknownTemplate {
        /// The file.
        file: PathBuf,
    },
    /// A template that does not compile.
    #[error("template {}{}: {reason}", file.display(), at(*line, *column))]
    TemplateSyntax {
        /// The template file (override path, or the built-in file name).
        file: PathBuf,
        /// Line, when the parser knows it.
        line: Option<usize>,
        /// Column, when the parser knows it.
        column: Option<usize>,
        /// What the parser says.
        reason: String,
    },
    /// A template that uses `{{{…}}}` or `{{&…}}`, which would skip the escaping of values.
    #[error("template {} line {line}: {{{{{{…}}}}}} and {{{{&…}}}} are not allowed (values must be escaped)", file.display())]
    Unescaped {
        /// The template file.
        file: PathBuf,
        /// Line of the first unescaped expression.
        line: usize,
    },
    /// Rendering failed, e.g. an override names a field the context lacks (strict mode).
    #[error("rendering {template} failed: {message}")]
    Render {
        /// The template (file name or override path).
        template: String,
        /// What Handlebars says, with the line.
        message: String,
    },
    /// An override user template dropped the revision marker the provisioning flow checks.
    #[error(
        "the user template's output for {sip_username} lacks \"HUB_REV={rev}\": keep the line \
         set_var=HUB_REV={{{{rev}}}} in the endpoint section"
    )]
    MissingRevision {
        /// Whose endpoint.
        sip_username: String,
        /// The revision expected.
        rev: String,
    },
    /// A file could not be read (a template, or a current config file for a diff).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A config file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" line {l}, column {c}"),
        (Some(l), None) => format!(" line {l}"),
        _ => String::new(),
    }
}

/// The rendered files, ready to write, and each user's revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedConfig {
    /// `hub-pjsip-users.conf`, `hub-pjsip-trunk.conf`, `hub-extensions.conf`, in that order.
    pub files: Vec<ConfigFile>,
    /// The `HUB_REV` each user's endpoint carries: what `PJSIPShowEndpoint` must report once
    /// Asterisk has loaded this render.
    pub revisions: BTreeMap<UserId, String>,
}

/// One generated file.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// File name inside the config directory.
    pub name: &'static str,
    /// Full contents (holds passwords: not printed by `Debug`).
    pub contents: String,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile").field("name", &self.name).field("bytes", &self.contents.len()).finish()
    }
}

impl RenderedConfig {
    /// The file called `name`, if rendered.
    pub fn file(&self, name: &str) -> Option<&ConfigFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// The first lines of every generated file; written by the hub itself, so no override can
/// drop them.
fn header(file: &str, template: TemplateName) -> String {
    format!(
        "; {file}: generated by the hub from the template {}.hbs. Do not edit: the hub rewrites\n\
         ; this file whenever users or templates change (override the template instead).\n\n",
        template.as_str()
    )
}

/// The revision of one user's config: the templates' fingerprint and the user's context
/// (rendered without its revision), hashed.
fn revision(fingerprint: &str, context: &PjsipUser<'_>, scratch: &mut Vec<u8>) -> String {
    scratch.clear();
    serde_json::to_writer(&mut *scratch, context).expect("a context serializes to JSON");
    let mut h = Sha256::new();
    h.update(fingerprint.as_bytes());
    h.update([0]);
    h.update(&scratch[..]);
    let mut rev = hex::encode(h.finalize());
    rev.truncate(REVISION_LEN);
    rev
}

fn unique<'a>(seen: &mut HashSet<&'a str>, what: &'static str, value: &'a str) -> Result<(), RenderError> {
    if seen.insert(value) { Ok(()) } else { Err(RenderError::Duplicate { what, value: value.to_string() }) }
}

/// Checks every plan value and renders the three files. CPU-bound (about 10 ms per 1,000
/// users on one core); a plan of several thousand users is rendered on every core, so call it
/// from a blocking thread, not an async task.
pub fn render(templates: &Templates, plan: &PbxPlan) -> Result<RenderedConfig, RenderError> {
    let options = EndpointOptions::new(&plan.settings)?;
    let trunk = PjsipTrunk::new(&plan.trunk, &options)?;
    let mut users = Vec::with_capacity(plan.users.len());
    let mut endpoints = HashSet::with_capacity(plan.users.len() + 2);
    let mut numbers = HashSet::with_capacity(plan.users.len() + plan.dialplan.ivr_numbers.len());
    let mut ids = HashSet::with_capacity(plan.users.len());
    unique(&mut endpoints, "endpoint name", trunk.name)?;
    if let Some(pstn) = plan.dialplan.outbound_trunk.as_deref() {
        unique(&mut endpoints, "endpoint name", pstn)?;
    }
    for u in &plan.users {
        let ctx = PjsipUser::new(u, &options)?;
        unique(&mut ids, "user id", u.user_id.as_str())?;
        unique(&mut endpoints, "endpoint name", ctx.name)?;
        unique(&mut numbers, "extension or IVR number", ctx.extension)?;
        users.push(ctx);
    }
    let dialplan = Dialplan::new(&plan.dialplan, options.context, trunk.name, &users)?;
    for n in &dialplan.ivr_numbers {
        unique(&mut numbers, "extension or IVR number", n)?;
    }
    let mut patterns = HashSet::new();
    for p in dialplan.outbound.iter().flat_map(|o| &o.patterns) {
        unique(&mut patterns, "outbound pattern", p)?;
    }

    // The per-user blocks are independent: large plans render them on every core, and the
    // dialplan alongside them.
    let parallel = users.len() >= USERS_PER_THREAD;
    let (users_conf, extensions_conf) = std::thread::scope(|s| {
        let dialplan_job = parallel.then(|| s.spawn(|| render_file(templates, TemplateName::Extensions, &dialplan)));
        let users_conf = render_users(templates, &mut users);
        let extensions_conf = match dialplan_job {
            Some(job) => join(job),
            None => render_file(templates, TemplateName::Extensions, &dialplan),
        };
        (users_conf, extensions_conf)
    });
    let revisions =
        plan.users.iter().zip(&mut users).map(|(u, ctx)| (u.user_id.clone(), std::mem::take(&mut ctx.rev))).collect();
    Ok(RenderedConfig {
        files: vec![
            ConfigFile { name: USERS_FILE, contents: users_conf? },
            ConfigFile { name: TRUNK_FILE, contents: render_file(templates, TemplateName::PjsipTrunk, &trunk)? },
            ConfigFile { name: EXTENSIONS_FILE, contents: extensions_conf? },
        ],
        revisions,
    })
}

/// Below this many users per thread, starting threads costs more than it saves.
const USERS_PER_THREAD: usize = 1024;

/// The file's header and one template rendered with `context`.
fn render_file<C: serde::Serialize>(
    templates: &Templates,
    name: TemplateName,
    context: &C,
) -> Result<String, RenderError> {
    let file = match name {
        TemplateName::PjsipUser => USERS_FILE,
        TemplateName::PjsipTrunk => TRUNK_FILE,
        TemplateName::Extensions => EXTENSIONS_FILE,
    };
    let mut out = header(file, name).into_bytes();
    templates.render_into(name, context, &mut out)?;
    Ok(String::from_utf8(out).expect("templates render UTF-8"))
}

/// `hub-pjsip-users.conf`: the header, then each user's block in plan order; sets every
/// user's `rev`.
fn render_users(templates: &Templates, users: &mut [PjsipUser<'_>]) -> Result<String, RenderError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(users.len() / USERS_PER_THREAD);
    let mut out = header(USERS_FILE, TemplateName::PjsipUser).into_bytes();
    if threads <= 1 {
        render_user_blocks(templates, users, &mut out)?;
    } else {
        let chunk = users.len().div_ceil(threads);
        std::thread::scope(|s| {
            let mut chunks = users.chunks_mut(chunk);
            let first = chunks.next().expect("at least one user");
            let jobs: Vec<_> = chunks
                .map(|c| {
                    s.spawn(move || {
                        let mut blocks = Vec::new();
                        render_user_blocks(templates, c, &mut blocks).map(|()| blocks)
                    })
                })
                .collect();
            let first = render_user_blocks(templates, first, &mut out);
            let rest: Vec<_> = jobs.into_iter().map(join).collect();
            first?;
            for blocks in rest {
                out.extend_from_slice(&blocks?);
            }
            Ok::<_, RenderError>(())
        })?;
    }
    Ok(String::from_utf8(out).expect("templates render UTF-8"))
}

/// Appends each user's block to `out`, after computing the user's revision; refuses output
/// that lacks the revision marker (an override that dropped it).
fn render_user_blocks(
    templates: &Templates,
    users: &mut [PjsipUser<'_>],
    out: &mut Vec<u8>,
) -> Result<(), RenderError> {
    out.reserve(users.len() * 900);
    let mut scratch = Vec::with_capacity(512);
    let mut marker = String::with_capacity(8 + REVISION_LEN);
    for ctx in users {
        ctx.rev = revision(templates.fingerprint(), ctx, &mut scratch);
        let start = out.len();
        templates.render_into(TemplateName::PjsipUser, ctx, out)?;
        marker.clear();
        marker.push_str("HUB_REV=");
        marker.push_str(&ctx.rev);
        if !std::str::from_utf8(&out[start..]).is_ok_and(|block| block.contains(&marker)) {
            return Err(RenderError::MissingRevision { sip_username: ctx.name.to_string(), rev: ctx.rev.clone() });
        }
    }
    Ok(())
}

/// A scoped thread's result; a panic there is re-raised here.
fn join<T>(job: std::thread::ScopedJoinHandle<'_, T>) -> T {
    job.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Writes the rendered files into `dir` (created if missing), each atomically and only when
/// its contents changed, so an unchanged render touches nothing and a crash leaves every file
/// whole. Returns the names of the files that changed: what needs an Asterisk reload.
pub fn write(dir: &Path, rendered: &RenderedConfig) -> Result<Vec<&'static str>, RenderError> {
    std::fs::create_dir_all(dir).map_err(|source| RenderError::Write { path: dir.to_path_buf(), source })?;
    let mut changed = Vec::new();
    for file in &rendered.files {
        let path = dir.join(file.name);
        if crate::files::write_if_changed(&path, file.contents.as_bytes(), FILE_MODE)
            .map_err(|source| RenderError::Write { path, source })?
        {
            changed.push(file.name);
        }
    }
    Ok(changed)
}

/// A unified diff from the files in `dir` to the rendered ones (`a/<name>` → `b/<name>`; a
/// missing file is `/dev/null`, so it shows as wholly added). Empty when nothing would change.
pub fn diff(dir: &Path, rendered: &RenderedConfig) -> Result<String, RenderError> {
    let mut out = String::new();
    for file in &rendered.files {
        let path = dir.join(file.name);
        let (old, old_name) = match std::fs::read(&path) {
            Ok(bytes) => (String::from_utf8_lossy(&bytes).into_owned(), format!("a/{}", file.name)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (String::new(), "/dev/null".to_string()),
            Err(source) => return Err(RenderError::Read { path, source }),
        };
        if old == file.contents {
            continue;
        }
        let text_diff = similar::TextDiff::from_lines(&old, &file.contents);
        out.push_str(&text_diff.unified_diff().header(&old_name, &format!("b/{}", file.name)).to_string());
    }
    Ok(out)
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
