//! `hub pbx …`: the phone system as Asterisk sees it, through AMI, and the provisioning the
//! hub does on it. Asterisk unreachable or the login refused: one line, exit code 3.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::{AmiTarget, Config};
use crate::directory::Directory;
use crate::model::{ProvisionStatus, SipAccount};
use crate::pbx::ami::{AmiError, Session};
use crate::pbx::asterisk;
use crate::pbx::provision::{PassOptions, PassReport, ProvisionError, ProvisionSettings, Provisioner, Rotate};
use crate::store::Store;

use super::progress::Bar;
use super::table::Table;
use super::{Exit, PbxCommand};

/// The files `pjsip.conf` must include, and the one `extensions.conf` must.
const PJSIP_FILES: [&str; 2] = ["hub-pjsip-trunk.conf", "hub-pjsip-users.conf"];
const DIALPLAN_FILE: &str = "hub-extensions.conf";

/// Runs a `hub pbx` subcommand.
pub async fn run(command: PbxCommand, config: &Config, store: Arc<dyn Store>) -> Exit {
    let settings = match ProvisionSettings::from_config(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failure;
        }
    };
    match command {
        PbxCommand::Init { asterisk_dir } => {
            let dir = asterisk_dir.unwrap_or_else(|| config.pbx.asterisk_config_dir.clone());
            return init(&dir, &settings.config_dir);
        }
        PbxCommand::Render { diff } => return render_cmd(store, settings, diff).await,
        _ => {}
    }
    let target = match ami_target(config) {
        Ok(t) => t,
        Err(exit) => return exit,
    };
    let auth = config.pbx.ami_auth;
    let result = match command {
        PbxCommand::Status { out } => return status(config, &target, store, out.json).await,
        PbxCommand::Apply { out } => return apply(store, settings, PassOptions::default(), out.json).await,
        PbxCommand::Reload { out } => {
            return apply(store, settings, PassOptions { force: true, ..Default::default() }, out.json).await;
        }
        PbxCommand::Rotate { user, out } => {
            let rotate = match user {
                None => Rotate::All,
                Some(u) => match Directory::new(store.clone(), config.pbx.extension_range).find(&u).await {
                    Ok(user) => Rotate::Users(vec![user.id]),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Exit::Failure;
                    }
                },
            };
            return apply(store, settings, PassOptions { rotate, force: false }, out.json).await;
        }
        PbxCommand::Originate { from, to, timeout, out } => {
            let channel = match originate_channel(config, &store, &from).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Exit::Failure;
                }
            };
            originate(&target, auth, &channel, &to, &config.pbx.context, Duration::from_secs(timeout), out.json).await
        }
        PbxCommand::Endpoints { out } => read(&target, auth, Listing::Endpoints, out.json).await,
        PbxCommand::Contacts { out } => read(&target, auth, Listing::Contacts, out.json).await,
        PbxCommand::Channels { out } => read(&target, auth, Listing::Channels, out.json).await,
        PbxCommand::Init { .. } | PbxCommand::Render { .. } => unreachable!("handled above"),
    };
    match result {
        Ok(exit) => exit,
        Err(e) => ami_failure(&e),
    }
}

fn ami_target(config: &Config) -> Result<AmiTarget, Exit> {
    let Some(url) = &config.pbx.ami_url else {
        eprintln!(
            "error: no Asterisk is configured: set [pbx] ami_url = \"ami://user:secret@host:5038\" (or HUB_PBX__AMI_URL)"
        );
        return Err(Exit::Config);
    };
    AmiTarget::parse(url.expose()).map_err(|e| {
        eprintln!("error: key pbx.ami_url: {e}");
        Exit::Config
    })
}

fn ami_failure(e: &AmiError) -> Exit {
    eprintln!("error: {e}");
    match e {
        AmiError::Refused { .. } => Exit::Failure,
        _ => Exit::Pbx,
    }
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// The read-only listings.
enum Listing {
    Endpoints,
    Contacts,
    Channels,
}

/// Logs in, prints one listing, logs off.
async fn read(target: &AmiTarget, auth: crate::config::AmiAuth, what: Listing, json: bool) -> Result<Exit, AmiError> {
    let mut s = asterisk::connect(target, auth).await?;
    match what {
        Listing::Endpoints => endpoints(&mut s, json).await?,
        Listing::Contacts => contacts(&mut s, json).await?,
        Listing::Channels => channels(&mut s, json).await?,
    }
    s.logoff().await?;
    Ok(Exit::Ok)
}

async fn endpoints(s: &mut Session, json: bool) -> Result<(), AmiError> {
    let rows = asterisk::endpoints(s).await?;
    if json {
        print_json(&rows);
    } else {
        let mut t = Table::new(vec!["ENDPOINT", "STATE", "CONTACTS"]);
        for r in &rows {
            t.row(vec![r.name.clone(), r.state.clone(), r.contacts.len().to_string()]);
        }
        print!("{}", t.render());
    }
    Ok(())
}

async fn contacts(s: &mut Session, json: bool) -> Result<(), AmiError> {
    let rows = asterisk::contacts(s).await?;
    if json {
        print_json(&rows);
    } else if rows.is_empty() {
        println!("no registered contacts");
    } else {
        let mut t = Table::new(vec!["AOR", "CONTACT", "STATUS", "RTT", "USER AGENT"]);
        for r in &rows {
            let rtt = r.rtt_us.map_or_else(|| "-".to_string(), |us| format!("{:.1} ms", us as f64 / 1000.0));
            t.row(vec![r.aor.clone(), r.uri.clone(), r.status.clone(), rtt, r.user_agent.clone()]);
        }
        print!("{}", t.render());
    }
    Ok(())
}

async fn channels(s: &mut Session, json: bool) -> Result<(), AmiError> {
    let rows = asterisk::channels(s).await?;
    if json {
        print_json(&rows);
    } else if rows.is_empty() {
        println!("no live channels");
    } else {
        let mut t = Table::new(vec!["CHANNEL", "STATE", "CALLER", "EXTEN", "APPLICATION", "DURATION"]);
        for r in &rows {
            t.row(vec![
                r.channel.clone(),
                r.state.clone(),
                r.caller.clone(),
                r.exten.clone(),
                r.application.clone(),
                r.duration.clone(),
            ]);
        }
        print!("{}", t.render());
    }
    Ok(())
}

/// `hub pbx status`.
#[derive(Debug, Serialize)]
struct Status {
    ami: String,
    reachable: bool,
    error: Option<String>,
    asterisk_version: Option<String>,
    last_reload: Option<crate::model::ReloadRecord>,
    pending: usize,
    provisioned: usize,
    failed: Vec<(String, String)>,
    removed: usize,
    contacts_registered: Option<usize>,
}

async fn status(config: &Config, target: &AmiTarget, store: Arc<dyn Store>, json: bool) -> Exit {
    let (records, last_reload) = match (store.provision_records().await, store.last_reload().await) {
        (Ok(r), Ok(l)) => (r, l),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Exit::Failure;
        }
    };
    let count = |s: ProvisionStatus| records.iter().filter(|r| r.status == s && !r.is_pending()).count();
    let mut st = Status {
        ami: format!("{}:{}", target.host, target.port),
        reachable: false,
        error: None,
        asterisk_version: None,
        last_reload,
        pending: records.iter().filter(|r| r.is_pending()).count(),
        provisioned: count(ProvisionStatus::Provisioned),
        failed: records
            .iter()
            .filter(|r| r.status == ProvisionStatus::Failed)
            .map(|r| (r.endpoint.clone(), r.detail.clone()))
            .collect(),
        removed: count(ProvisionStatus::Removed),
        contacts_registered: None,
    };
    let live = async {
        let mut s = asterisk::connect(target, config.pbx.ami_auth).await?;
        let version = asterisk::version(&mut s).await?;
        let contacts = asterisk::contacts(&mut s).await?;
        let _ = s.logoff().await;
        Ok::<_, AmiError>((version, contacts.len()))
    };
    match live.await {
        Ok((version, contacts)) => {
            st.reachable = true;
            st.asterisk_version = Some(version);
            st.contacts_registered = Some(contacts);
        }
        Err(e) => st.error = Some(e.to_string()),
    }
    if json {
        print_json(&st);
    } else {
        let reach = match (&st.asterisk_version, &st.error) {
            (Some(v), _) => format!("reachable at {} (Asterisk {v})", st.ami),
            (None, Some(e)) => format!("UNREACHABLE at {}: {e}", st.ami),
            (None, None) => "unknown".into(),
        };
        println!("Asterisk      {reach}");
        match &st.last_reload {
            Some(r) => println!(
                "Last reload   {} {}: {} ({} ms)",
                humantime::format_rfc3339_seconds(r.at.to_system_time()),
                if r.ok { "ok" } else { "FAILED" },
                r.detail,
                r.duration_ms
            ),
            None => println!("Last reload   never"),
        }
        println!("Pending       {} change(s)", st.pending);
        println!("Users         {} provisioned, {} failed, {} removed", st.provisioned, st.failed.len(), st.removed);
        match st.contacts_registered {
            Some(n) => println!("Contacts      {n} registered"),
            None => println!("Contacts      unknown"),
        }
        if !st.failed.is_empty() {
            let mut t = Table::new(vec!["FAILED ENDPOINT", "REASON"]);
            for (e, why) in &st.failed {
                t.row(vec![e.clone(), why.clone()]);
            }
            print!("{}", t.render());
        }
    }
    if st.reachable { Exit::Ok } else { Exit::Pbx }
}

fn provisioner(store: Arc<dyn Store>, settings: ProvisionSettings) -> Result<Provisioner, Exit> {
    Provisioner::new(store, settings).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Config
    })
}

/// Masks every `password=` value with a short fingerprint, so a diff still shows a rotation.
fn mask_passwords(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        match body.split_once('=') {
            Some((key, value)) if key.trim() == "password" => {
                let fp = hex::encode(&Sha256::digest(value.trim().as_bytes())[..4]);
                out.push_str(&format!("{key}=[redacted {fp}]"));
                out.push_str(&line[body.len()..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

async fn render_cmd(store: Arc<dyn Store>, settings: ProvisionSettings, diff: bool) -> Exit {
    let dir = settings.config_dir.clone();
    let p = match provisioner(store.clone(), settings) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let rendered = match p.render_preview().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failure;
        }
    };
    if diff {
        let mut masked = rendered.clone();
        for f in &mut masked.files {
            f.contents = mask_passwords(&f.contents);
        }
        let mut any = false;
        for f in &masked.files {
            let current = std::fs::read_to_string(dir.join(f.name)).map(|c| mask_passwords(&c)).unwrap_or_default();
            if current != f.contents {
                any = true;
                let d = similar::TextDiff::from_lines(&current, &f.contents);
                print!(
                    "{}",
                    d.unified_diff().context_radius(3).header(&format!("a/{}", f.name), &format!("b/{}", f.name))
                );
            }
        }
        if !any {
            println!("no differences from the files in {}", dir.display());
        }
    } else {
        for f in &rendered.files {
            println!("; ==> {} <==", dir.join(f.name).display());
            print!("{}", mask_passwords(&f.contents));
        }
    }
    Exit::Ok
}

/// After `hub users add|disable|enable`: brings Asterisk in line at once (the running hub
/// would within `pbx.resync_every`). Reported on stderr so `--json` output stays clean; an
/// unreachable Asterisk leaves the change pending (exit 3), never undoes the user change.
pub async fn apply_after_user_change(store: Arc<dyn Store>, config: &Config) -> Exit {
    let p = match ProvisionSettings::from_config(config).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Failure
    }) {
        Ok(settings) => match provisioner(store, settings) {
            Ok(p) => p,
            Err(exit) => return exit,
        },
        Err(exit) => return exit,
    };
    match p.run(&PassOptions::default(), &crate::pbx::provision::Quiet).await {
        Ok(r) => {
            for e in &r.provisioned {
                eprintln!("asterisk: provisioned endpoint {e}");
            }
            for e in &r.removed {
                eprintln!("asterisk: removed endpoint {e}");
            }
            for c in &r.hung_up {
                eprintln!("asterisk: hung up {c}");
            }
            for (e, why) in &r.failed {
                eprintln!("asterisk: endpoint {e} FAILED: {why}");
            }
            if let Some(why) = &r.pending_reason {
                eprintln!(
                    "asterisk: {} change(s) pending: {why}; `hub serve` applies them when Asterisk is back",
                    r.pending
                );
                return Exit::Pbx;
            }
            if r.failed.is_empty() { Exit::Ok } else { Exit::Failure }
        }
        Err(e) => {
            eprintln!("error: asterisk: {e}");
            Exit::Failure
        }
    }
}

fn print_report(r: &PassReport, json: bool) {
    if json {
        print_json(r);
        return;
    }
    if r.files_changed.is_empty() {
        println!("config unchanged");
    } else {
        println!("wrote {}", r.files_changed.join(", "));
    }
    if r.accounts_created > 0 {
        println!("created {} SIP account(s)", r.accounts_created);
    }
    if r.rotated > 0 {
        println!("rotated {} SIP secret(s)", r.rotated);
    }
    if r.reloaded {
        println!(
            "reloaded Asterisk: {} provisioned, {} removed, {} failed",
            r.provisioned.len(),
            r.removed.len(),
            r.failed.len()
        );
    }
    for c in &r.hung_up {
        println!("hung up {c}");
    }
    if !r.failed.is_empty() {
        let mut t = Table::new(vec!["FAILED ENDPOINT", "REASON"]);
        for (e, why) in &r.failed {
            t.row(vec![e.clone(), why.clone()]);
        }
        print!("{}", t.render());
    }
    if let Some(why) = &r.pending_reason {
        println!("{} change(s) pending: {why}", r.pending);
    }
    if r.still_failed > 0 {
        println!(
            "{} endpoint(s) still failed from an earlier apply (see `hub pbx status`); `hub pbx reload` retries them",
            r.still_failed
        );
    } else if r.is_noop() {
        println!("nothing to do: Asterisk has every user's current config");
    }
}

async fn apply(store: Arc<dyn Store>, settings: ProvisionSettings, options: PassOptions, json: bool) -> Exit {
    let p = match provisioner(store, settings) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let bar = Bar::new("verifying endpoints");
    match p.run(&options, &bar).await {
        Ok(report) => {
            print_report(&report, json);
            if let Some(why) = &report.pending_reason {
                eprintln!("error: {why}");
                Exit::Pbx
            } else if !report.failed.is_empty() {
                Exit::Failure
            } else {
                Exit::Ok
            }
        }
        Err(ProvisionError::Unreachable(e)) => ami_failure(&e),
        Err(ProvisionError::Ami(e)) => ami_failure(&e),
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

/// FROM as a channel: a channel name as given, or a user's PJSIP endpoint.
async fn originate_channel(config: &Config, store: &Arc<dyn Store>, from: &str) -> Result<String, String> {
    if from.contains('/') {
        return Ok(from.to_string());
    }
    let user = Directory::new(store.clone(), config.pbx.extension_range).find(from).await.map_err(|e| e.to_string())?;
    let account: Option<SipAccount> = store.sip_account(&user.id).await.map_err(|e| e.to_string())?;
    let account =
        account.ok_or_else(|| format!("{} has no SIP account yet: run `hub pbx apply` first", user.username))?;
    Ok(format!("PJSIP/{}", account.username))
}

#[derive(Serialize)]
struct OriginateResult {
    channel: String,
    to: String,
    answered: bool,
    reason: String,
}

/// Asterisk's `OriginateResponse` reason codes (the `AST_CONTROL_*` values).
fn reason_text(code: &str) -> &'static str {
    match code {
        "0" => "failed (no such endpoint, or no registered contact)",
        "1" => "hung up",
        "3" => "no answer",
        "4" => "answered",
        "5" => "busy",
        "8" => "congestion",
        _ => "failed",
    }
}

async fn originate(
    target: &AmiTarget,
    auth: crate::config::AmiAuth,
    channel: &str,
    to: &str,
    context: &str,
    timeout: Duration,
    json: bool,
) -> Result<Exit, AmiError> {
    // The outcome of an async Originate only comes as an event: this session has events on.
    let auth = match auth {
        crate::config::AmiAuth::Md5 => crate::pbx::ami::Auth::Md5,
        crate::config::AmiAuth::Plain => crate::pbx::ami::Auth::Plain,
    };
    let mut s = Session::login(target, auth, true).await?;
    let ms = timeout.as_millis().to_string();
    let caller = format!("\"hub test call\" <{to}>");
    let queued = s
        .action(
            "Originate",
            &[
                ("Channel", channel),
                ("Context", context),
                ("Exten", to),
                ("Priority", "1"),
                ("Timeout", ms.as_str()),
                ("CallerID", caller.as_str()),
                ("Async", "true"),
            ],
        )
        .await?;
    let id = queued.action_id().unwrap_or_default().to_string();
    let deadline = tokio::time::Instant::now() + timeout + Duration::from_secs(5);
    let event = loop {
        let Some(m) = s.next_event(deadline).await? else {
            return Err(AmiError::Closed("before the call's outcome arrived".into()));
        };
        if m.name() == Some("OriginateResponse") && m.action_id() == Some(id.as_str()) {
            break m;
        }
    };
    let _ = s.logoff().await;
    let code = event.get("Reason").unwrap_or("").trim().to_string();
    let answered = event.get("Response").is_some_and(|r| r.eq_ignore_ascii_case("Success")) && code == "4";
    let result = OriginateResult {
        channel: channel.to_string(),
        to: to.to_string(),
        answered,
        reason: reason_text(&code).to_string(),
    };
    if json {
        print_json(&result);
    } else if answered {
        println!("{channel} answered; dialling {to} in context {context}");
    } else {
        println!("{channel}: {} (reason {code})", result.reason);
    }
    Ok(if answered { Exit::Ok } else { Exit::Failure })
}

/// `hub pbx init`: are the hub's files included by Asterisk's config?
fn init(asterisk_dir: &Path, config_dir: &Path) -> Exit {
    let config_dir = std::fs::canonicalize(config_dir).unwrap_or_else(|_| config_dir.to_path_buf());
    let wanted: [(&str, Vec<PathBuf>); 2] = [
        ("pjsip.conf", PJSIP_FILES.iter().map(|f| config_dir.join(f)).collect()),
        ("extensions.conf", vec![config_dir.join(DIALPLAN_FILE)]),
    ];
    let mut missing_any = false;
    for (main, files) in &wanted {
        let path = asterisk_dir.join(main);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                println!("{}: cannot read it ({e})", path.display());
                missing_any = true;
                continue;
            }
        };
        let missing: Vec<&PathBuf> = files.iter().filter(|f| !includes(&text, f)).collect();
        if missing.is_empty() {
            println!("{}: includes the hub's files", path.display());
        } else {
            missing_any = true;
            println!("{}: add these lines at its end:", path.display());
            for f in missing {
                println!("#include \"{}\"", f.display());
            }
        }
    }
    let generated: Vec<String> = PJSIP_FILES
        .iter()
        .chain(std::iter::once(&DIALPLAN_FILE))
        .filter(|f| !config_dir.join(f).exists())
        .map(|f| f.to_string())
        .collect();
    if !generated.is_empty() {
        println!("not written yet in {}: {} (run `hub pbx apply`)", config_dir.display(), generated.join(", "));
    }
    if missing_any {
        println!("then reload Asterisk (`hub pbx reload`)");
        Exit::Failure
    } else {
        Exit::Ok
    }
}

/// Whether config `text` has an active `#include`/`#tryinclude` of `file`.
fn includes(text: &str, file: &Path) -> bool {
    let want = file.to_string_lossy();
    text.lines().any(|line| {
        let line = line.trim();
        let rest = line.strip_prefix("#include").or_else(|| line.strip_prefix("#tryinclude"));
        rest.is_some_and(|r| {
            let r = r.split(';').next().unwrap_or("").trim().trim_matches(|c| c == '"' || c == '<' || c == '>');
            r == want
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_lines_are_recognised() {
        let f = Path::new("/var/lib/hub/asterisk/hub-pjsip-users.conf");
        assert!(includes("[global]\n#include \"/var/lib/hub/asterisk/hub-pjsip-users.conf\"\n", f));
        assert!(includes("#tryinclude /var/lib/hub/asterisk/hub-pjsip-users.conf ; hub\n", f));
        assert!(!includes(";#include \"/var/lib/hub/asterisk/hub-pjsip-users.conf\"\n", f));
        assert!(!includes("#include \"/other/hub-pjsip-users.conf\"\n", f));
    }

    #[test]
    fn passwords_are_masked_but_changes_still_show() {
        let a = mask_passwords("[a-auth]\ntype=auth\npassword=one\nusername=a\n");
        let b = mask_passwords("[a-auth]\ntype=auth\npassword=two\nusername=a\n");
        assert!(!a.contains("one") && !b.contains("two"), "{a}");
        assert!(a.contains("password=[redacted "));
        assert_ne!(a, b);
        assert!(a.ends_with("username=a\n"));
    }
}
