//! Provisioning: the store says who should have an endpoint; this makes Asterisk agree.
//!
//! ```text
//!  store (users, SIP accounts)
//!    → accounts created / rotated
//!    → plan → render → write (only changed files, atomically)
//!    → desired revision per user, persisted          ← pending work survives a restart
//!    → one Reload of res_pjsip.so + pbx_config.so
//!    → PJSIPShowEndpoint per changed user: HUB_REV == desired?  (a reload "succeeds" even
//!      when Asterisk dropped the object or kept the old file)
//!    → record provisioned / failed: reason / removed; hang up removed users' channels
//! ```
//!
//! One pass runs at a time (a mutex); the loop in `provision_loop.rs` coalesces changes
//! into passes and retries while Asterisk is down.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::accounts;
use super::ami::{AmiError, Session};
use super::asterisk;
use super::render::{self, RenderError};
use super::{DialplanPlan, EndpointSettings, PbxPlan, PlannedUser, Templates, TrunkPlan};
use crate::config::{AmiAuth, AmiTarget, Config};
use crate::model::{ProvisionRecord, ProvisionStatus, ReloadRecord, SipAccount, Timestamp, User, UserId};
use crate::store::{Store, StoreError, Unique, UserQuery};

/// Endpoints verified per progress step (each step is pipelined by `endpoints_checked`).
const VERIFY_BATCH: usize = 256;

/// The modules a provisioning reload asks Asterisk to reload, in this order.
pub const RELOAD_MODULES: [&str; 2] = ["res_pjsip.so", "pbx_config.so"];

/// What can stop a provisioning pass.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A template or a value could not be rendered, or a file not written.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Asterisk could not be reached or refused the login: the work stays pending.
    #[error("Asterisk is unreachable, changes stay pending: {0}")]
    Unreachable(AmiError),
    /// The hub's own SIP password could not be read or created.
    #[error("the hub's SIP trunk secret: {0}")]
    TrunkSecret(String),
    /// The rendering thread panicked or was cancelled.
    #[error("rendering the Asterisk config failed: {0}")]
    Task(String),
    /// Asterisk answered, but not as expected, in the middle of a pass.
    #[error(transparent)]
    Ami(#[from] AmiError),
}

/// Everything a pass needs from the configuration.
#[derive(Clone, Debug)]
pub struct ProvisionSettings {
    /// Where the generated files go.
    pub config_dir: PathBuf,
    /// Override templates.
    pub templates_dir: Option<PathBuf>,
    /// Endpoint options shared by every user.
    pub endpoint: EndpointSettings,
    /// Dialplan inputs that are not per user.
    pub dialplan: DialplanPlan,
    /// The hub's own SIP user agent as Asterisk sees it.
    pub trunk: TrunkPlan,
    /// Secret lifetime.
    pub rotate_every: Duration,
    /// Where Asterisk's manager is; `None`: files are written, nothing is reloaded.
    pub ami: Option<(AmiTarget, AmiAuth)>,
}

impl ProvisionSettings {
    /// From the hub's configuration (already validated). Reads or creates the trunk secret.
    pub fn from_config(config: &Config) -> Result<Self, ProvisionError> {
        let pbx = &config.pbx;
        let ami = pbx.ami_url.as_ref().and_then(|u| AmiTarget::parse(u.expose()).ok()).map(|t| (t, pbx.ami_auth));
        let trunk_password = accounts::trunk_secret(&config.sip.password, &config.store.data_dir)
            .map_err(|e| ProvisionError::TrunkSecret(e.to_string()))?;
        Ok(Self {
            config_dir: config.pbx_config_dir(),
            templates_dir: pbx.templates_dir.clone(),
            endpoint: EndpointSettings {
                context: pbx.context.clone(),
                max_contacts: pbx.max_contacts,
                transport: pbx.transport.clone(),
                rtp_timeout_secs: u32::try_from(pbx.rtp_timeout.as_secs()).unwrap_or(u32::MAX),
                media_address: pbx.media_address.clone(),
                ..EndpointSettings::default()
            },
            dialplan: DialplanPlan {
                ivr_numbers: config.ivr.routes.keys().cloned().collect(),
                voicemail_prefix: pbx.voicemail_prefix.clone(),
                ring_seconds: u32::try_from(pbx.ring_time.as_secs()).unwrap_or(u32::MAX),
                outbound_trunk: pbx.outbound_trunk.clone(),
                outbound_patterns: pbx.outbound_patterns.clone(),
            },
            trunk: TrunkPlan {
                endpoint: pbx.trunk_endpoint.clone(),
                username: config.sip.username.clone(),
                password: trunk_password,
            },
            rotate_every: pbx.rotate_every,
            ami,
        })
    }
}

/// Which secrets a pass replaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Rotate {
    /// Only those older than `rotate_every`.
    #[default]
    Due,
    /// Every user's (`hub pbx rotate`).
    All,
    /// These users' (`hub pbx rotate --user U`), plus those due.
    Users(Vec<UserId>),
}

/// How a pass runs.
#[derive(Clone, Debug, Default)]
pub struct PassOptions {
    /// Secrets to replace.
    pub rotate: Rotate,
    /// Reload and verify every provisioned user even when nothing changed (`hub pbx reload`).
    pub force: bool,
}

/// Reports the verification of many users (a progress bar in the CLI).
pub trait Progress: Send + Sync {
    /// Verification of `total` endpoints begins.
    fn start(&self, total: u64);
    /// One endpoint was checked.
    fn step(&self);
    /// Done.
    fn finish(&self);
}

/// No progress reporting.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: u64) {}
    fn step(&self) {}
    fn finish(&self) {}
}

/// What a pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassReport {
    /// Generated files whose content changed (and were rewritten).
    pub files_changed: Vec<String>,
    /// SIP accounts created for new users.
    pub accounts_created: usize,
    /// Secrets replaced.
    pub rotated: usize,
    /// Whether Asterisk was asked to reload.
    pub reloaded: bool,
    /// Endpoints verified at their new revision.
    pub provisioned: Vec<String>,
    /// Endpoints Asterisk did not take, with the reason.
    pub failed: Vec<(String, String)>,
    /// Endpoints removed (disabled users).
    pub removed: Vec<String>,
    /// Channels hung up because their user was disabled.
    pub hung_up: Vec<String>,
    /// Changes left pending and why (no AMI configured, Asterisk unreachable).
    pub pending: usize,
    /// Why work is still pending, when it is.
    pub pending_reason: Option<String>,
    /// Endpoints that failed in an earlier pass and were not retried (nothing changed since;
    /// `hub pbx reload` retries them).
    pub still_failed: usize,
}

impl PassReport {
    /// Whether the pass had nothing to do.
    pub fn is_noop(&self) -> bool {
        self.files_changed.is_empty() && !self.reloaded && self.pending == 0 && self.rotated == 0
    }
}

/// The provisioning engine: a cheap `Clone` handle.
#[derive(Clone)]
pub struct Provisioner {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    settings: ProvisionSettings,
    templates: Templates,
    one_pass: tokio::sync::Mutex<()>,
}

/// Whether `user` should have an endpoint on Asterisk.
fn eligible(user: &User) -> bool {
    !user.disabled && user.extension.is_some()
}

impl Provisioner {
    /// Loads the templates (built-in or overridden) and checks them once.
    pub fn new(store: Arc<dyn Store>, settings: ProvisionSettings) -> Result<Self, ProvisionError> {
        let templates = Templates::load(settings.templates_dir.as_deref())?;
        Ok(Self { inner: Arc::new(Inner { store, settings, templates, one_pass: tokio::sync::Mutex::new(()) }) })
    }

    /// The settings in use.
    pub fn settings(&self) -> &ProvisionSettings {
        &self.inner.settings
    }

    /// Renders what the files would contain now, without writing or creating anything
    /// (`hub pbx render`). Users without a SIP account yet are left out.
    pub async fn render_preview(&self) -> Result<render::RenderedConfig, ProvisionError> {
        let store = &self.inner.store;
        let users = store.list_users(&UserQuery { include_disabled: true, ..Default::default() }).await?;
        let accounts: HashMap<UserId, SipAccount> =
            store.sip_accounts().await?.into_iter().map(|a| (a.user_id.clone(), a)).collect();
        self.render_blocking(self.plan(&users, &accounts), None).await.map(|(r, _)| r)
    }

    /// Renders (and writes, with `dir`) on a blocking thread: a big render spreads over
    /// every core and must not stall the async runtime.
    async fn render_blocking(
        &self,
        plan: PbxPlan,
        dir: Option<PathBuf>,
    ) -> Result<(render::RenderedConfig, Vec<String>), ProvisionError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let rendered = render::render(&inner.templates, &plan)?;
            let changed = match dir {
                Some(dir) => render::write(&dir, &rendered)?.into_iter().map(str::to_string).collect(),
                None => Vec::new(),
            };
            Ok((rendered, changed))
        })
        .await
        .map_err(|e| ProvisionError::Task(e.to_string()))?
    }

    fn plan(&self, users: &[User], accounts: &HashMap<UserId, SipAccount>) -> PbxPlan {
        let s = &self.inner.settings;
        let mut planned: Vec<PlannedUser> = users
            .iter()
            .filter(|u| eligible(u))
            .filter_map(|u| {
                let account = accounts.get(&u.id)?;
                Some(PlannedUser {
                    user_id: u.id.clone(),
                    username: u.username.clone(),
                    display_name: u.display_name.clone(),
                    extension: u.extension.clone()?,
                    sip_username: account.username.clone(),
                    secret: account.secret.clone(),
                })
            })
            .collect();
        planned.sort_by(|a, b| a.sip_username.cmp(&b.sip_username));
        PbxPlan { users: planned, trunk: s.trunk.clone(), dialplan: s.dialplan.clone(), settings: s.endpoint.clone() }
    }

    /// Creates missing accounts and replaces secrets as `rotate` asks; returns the accounts by
    /// user and (created, rotated) counts.
    async fn ensure_accounts(
        &self,
        users: &[User],
        rotate: &Rotate,
        now: Timestamp,
    ) -> Result<(HashMap<UserId, SipAccount>, usize, usize), ProvisionError> {
        let store = &self.inner.store;
        let mut accounts: HashMap<UserId, SipAccount> =
            store.sip_accounts().await?.into_iter().map(|a| (a.user_id.clone(), a)).collect();
        let (mut fresh, mut rotated_accounts) = (Vec::new(), Vec::new());
        for user in users.iter().filter(|u| eligible(u)) {
            match accounts.get(&user.id) {
                None => fresh.push(accounts::new_account(user, now)),
                Some(account) => {
                    let asked = match rotate {
                        Rotate::Due => false,
                        Rotate::All => true,
                        Rotate::Users(ids) => ids.contains(&user.id),
                    };
                    if asked || accounts::due_for_rotation(account, self.inner.settings.rotate_every, now) {
                        tracing::debug!(user = %user.username, endpoint = %account.username, "SIP secret rotated");
                        rotated_accounts.push(accounts::rotated(account, now));
                    }
                }
            }
        }
        let (created, rotated) = (fresh.len(), rotated_accounts.len());
        // One transaction for all of them (the first pass may create thousands); on the rare
        // clash of a random username, one by one with new names.
        let mut batch = fresh.clone();
        batch.extend(rotated_accounts.iter().cloned());
        match store.put_sip_accounts(&batch).await {
            Ok(()) => {}
            Err(StoreError::Conflict { what: Unique::SipUsername, .. }) => {
                for account in &mut fresh {
                    let user = users.iter().find(|u| u.id == account.user_id).expect("an account of a listed user");
                    *account = create_account(&**store, user, now).await?;
                }
                store.put_sip_accounts(&rotated_accounts).await?;
            }
            Err(e) => return Err(e.into()),
        }
        for account in fresh.into_iter().chain(rotated_accounts) {
            accounts.insert(account.user_id.clone(), account);
        }
        Ok((accounts, created, rotated))
    }

    /// One provisioning pass (see the module docs). Unreachable Asterisk is not an error of
    /// the pass: the work is recorded as pending and [`PassReport::pending_reason`] says why.
    #[tracing::instrument(name = "provision", skip_all, fields(force = options.force))]
    pub async fn run(&self, options: &PassOptions, progress: &dyn Progress) -> Result<PassReport, ProvisionError> {
        let _one = self.inner.one_pass.lock().await;
        let store = &self.inner.store;
        let settings = &self.inner.settings;
        let now = Timestamp::now();
        let users = store.list_users(&UserQuery { include_disabled: true, ..Default::default() }).await?;
        let (accounts, accounts_created, rotated) = self.ensure_accounts(&users, &options.rotate, now).await?;
        let (rendered, files_changed) =
            self.render_blocking(self.plan(&users, &accounts), Some(settings.config_dir.clone())).await?;
        if accounts_created + rotated > 0 {
            tracing::info!(created = accounts_created, rotated, "SIP accounts updated");
        }
        let mut report = PassReport { files_changed, accounts_created, rotated, ..Default::default() };

        // Desired state, persisted before Asterisk is touched.
        let mut records: HashMap<UserId, ProvisionRecord> =
            store.provision_records().await?.into_iter().map(|r| (r.user_id.clone(), r)).collect();
        let mut changed = Vec::new();
        for user in &users {
            let desired = rendered.revisions.get(&user.id).cloned();
            let endpoint = accounts.get(&user.id).map(|a| a.username.clone());
            match records.get_mut(&user.id) {
                None if desired.is_none() => {}
                None => {
                    let r = ProvisionRecord {
                        user_id: user.id.clone(),
                        endpoint: endpoint.unwrap_or_default(),
                        desired,
                        applied: None,
                        status: ProvisionStatus::Pending,
                        detail: "written, waiting for the reload".into(),
                        updated_at: now,
                    };
                    records.insert(user.id.clone(), r.clone());
                    changed.push(r);
                }
                Some(r) => {
                    let wanted_endpoint = endpoint.unwrap_or_else(|| r.endpoint.clone());
                    let forced = options.force && desired.is_some();
                    if r.desired != desired || r.endpoint != wanted_endpoint || forced {
                        r.desired = desired;
                        r.endpoint = wanted_endpoint;
                        r.status = ProvisionStatus::Pending;
                        r.detail = "written, waiting for the reload".into();
                        r.updated_at = now;
                        changed.push(r.clone());
                    }
                }
            }
        }
        store.put_provision_records(&changed).await?;
        let retry_failed = options.force;
        report.still_failed = if retry_failed {
            0
        } else {
            records.values().filter(|r| r.status == ProvisionStatus::Failed && !r.is_pending()).count()
        };
        let mut pending: Vec<ProvisionRecord> = records
            .into_values()
            .filter(|r| r.is_pending() || (retry_failed && r.status == ProvisionStatus::Failed))
            .collect();
        pending.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        if pending.is_empty() && report.files_changed.is_empty() && !options.force {
            return Ok(report);
        }

        let Some((target, auth)) = &settings.ami else {
            return self
                .leave_pending(report, pending, "pbx.ami_url is not set: nothing reloads Asterisk".into())
                .await;
        };
        let mut session = match asterisk::connect(target, *auth).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, pending = pending.len(), "Asterisk unreachable; changes stay pending");
                return self.leave_pending(report, pending, format!("Asterisk unreachable: {e}")).await;
            }
        };
        let started = Instant::now();
        let outcome = self.reload_and_verify(&mut session, &pending, &mut report, progress).await;
        let _ = session.logoff().await;
        let records = match outcome {
            Ok(records) => records,
            Err(AmiError::Refused { action, message }) if action == "Reload" => {
                let reason = format!("Asterisk refused the reload: {message}");
                let records = mark(&pending, ProvisionStatus::Failed, &reason);
                store.put_provision_records(&records).await?;
                report.failed = pending.iter().map(|r| (r.endpoint.clone(), reason.clone())).collect();
                self.record_reload(false, reason, pending.len(), started).await?;
                return Ok(report);
            }
            Err(e) => {
                let reason = format!("Asterisk connection failed during the reload: {e}");
                tracing::warn!(error = %e, "reload interrupted; changes stay pending");
                return self.leave_pending(report, pending, reason).await;
            }
        };
        store.put_provision_records(&records).await?;
        let ok = report.failed.is_empty();
        let summary = format!(
            "reloaded {}; {} provisioned, {} removed, {} failed",
            RELOAD_MODULES.join(", "),
            report.provisioned.len(),
            report.removed.len(),
            report.failed.len()
        );
        tracing::info!(
            provisioned = report.provisioned.len(),
            removed = report.removed.len(),
            failed = report.failed.len(),
            hung_up = report.hung_up.len(),
            ms = started.elapsed().as_millis() as u64,
            "provisioning applied"
        );
        for (endpoint, reason) in &report.failed {
            tracing::error!(endpoint = %endpoint, reason = %reason, "endpoint not provisioned");
        }
        self.record_reload(ok, summary, pending.len(), started).await?;
        Ok(report)
    }

    async fn leave_pending(
        &self,
        mut report: PassReport,
        pending: Vec<ProvisionRecord>,
        reason: String,
    ) -> Result<PassReport, ProvisionError> {
        let records = mark(&pending, ProvisionStatus::Pending, &reason);
        self.inner.store.put_provision_records(&records).await?;
        report.pending = pending.len();
        report.pending_reason = Some(reason);
        Ok(report)
    }

    async fn record_reload(
        &self,
        ok: bool,
        detail: String,
        changed: usize,
        started: Instant,
    ) -> Result<(), StoreError> {
        let reload = ReloadRecord {
            at: Timestamp::now(),
            ok,
            detail,
            changed: u32::try_from(changed).unwrap_or(u32::MAX),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        self.inner.store.put_reload(&reload).await
    }

    /// Reloads once and checks every pending endpoint; returns the updated records.
    async fn reload_and_verify(
        &self,
        session: &mut Session,
        pending: &[ProvisionRecord],
        report: &mut PassReport,
        progress: &dyn Progress,
    ) -> Result<Vec<ProvisionRecord>, AmiError> {
        for module in RELOAD_MODULES {
            asterisk::reload(session, module).await?;
        }
        report.reloaded = true;
        let now = Timestamp::now();
        let mut out = Vec::with_capacity(pending.len());
        let mut channels = None;
        progress.start(pending.len() as u64);
        // Verified in pipelined batches; the progress bar moves batch by batch.
        let mut checks = Vec::with_capacity(pending.len());
        for chunk in pending.chunks(VERIFY_BATCH) {
            let names: Vec<&str> = chunk.iter().map(|r| r.endpoint.as_str()).collect();
            checks.extend(asterisk::endpoints_checked(session, &names).await?);
            for _ in chunk {
                progress.step();
            }
        }
        for (record, found) in pending.iter().zip(checks) {
            let mut r = record.clone();
            r.updated_at = now;
            match (&record.desired, found) {
                (Some(rev), Some(check)) => match verdict(&record.endpoint, rev, &check) {
                    Ok(()) => {
                        r.applied = Some(rev.clone());
                        r.status = ProvisionStatus::Provisioned;
                        r.detail = String::new();
                        report.provisioned.push(r.endpoint.clone());
                    }
                    Err(reason) => {
                        r.status = ProvisionStatus::Failed;
                        r.detail = reason.clone();
                        report.failed.push((r.endpoint.clone(), reason));
                    }
                },
                (Some(_), None) => {
                    let reason = format!(
                        "Asterisk has no endpoint {} after the reload; its log says why (an option or value it \
                         rejected?)",
                        record.endpoint
                    );
                    r.status = ProvisionStatus::Failed;
                    r.detail = reason.clone();
                    report.failed.push((r.endpoint.clone(), reason));
                }
                (None, found) => {
                    if found.is_some() {
                        let reason = format!("Asterisk still has endpoint {} after the reload", record.endpoint);
                        r.status = ProvisionStatus::Failed;
                        r.detail = reason.clone();
                        report.failed.push((r.endpoint.clone(), reason));
                    } else {
                        r.applied = None;
                        r.status = ProvisionStatus::Removed;
                        r.detail = String::new();
                        report.removed.push(r.endpoint.clone());
                    }
                    // A disabled user's calls end now, whether or not the endpoint is gone.
                    if channels.is_none() {
                        channels = Some(asterisk::channels(session).await?);
                    }
                    for c in asterisk::channels_of(channels.as_deref().unwrap_or_default(), &record.endpoint) {
                        if asterisk::hangup(session, &c.channel).await? {
                            tracing::info!(channel = %c.channel, endpoint = %record.endpoint, "hung up a removed user's call");
                            report.hung_up.push(c.channel.clone());
                        }
                    }
                }
            }
            out.push(r);
        }
        progress.finish();
        Ok(out)
    }
}

/// Whether Asterisk holds revision `rev` of `endpoint`, and if not, why.
fn verdict(endpoint: &str, rev: &str, check: &asterisk::EndpointCheck) -> Result<(), String> {
    match check.revision() {
        Some(r) if r == rev => {}
        Some(old) => {
            return Err(format!(
                "Asterisk still has revision {old} of endpoint {endpoint}, not {rev}: it did not load the new \
                 hub-pjsip-users.conf (a syntax error? see its log)"
            ));
        }
        None => return Err(format!("endpoint {endpoint} on Asterisk has no HUB_REV: it was not written by this hub")),
    }
    if check.auth_username.is_none() {
        return Err(format!("Asterisk has endpoint {endpoint} but not its auth {:?}: nobody can register", check.auth));
    }
    if !check.has_aor {
        return Err(format!("Asterisk has endpoint {endpoint} but not its AOR {:?}: it cannot be called", check.aors));
    }
    Ok(())
}

/// `records` with a new status and detail, stamped now.
fn mark(records: &[ProvisionRecord], status: ProvisionStatus, detail: &str) -> Vec<ProvisionRecord> {
    let at = Timestamp::now();
    records
        .iter()
        .map(|r| ProvisionRecord { status, detail: detail.to_string(), updated_at: at, ..r.clone() })
        .collect()
}

/// Stores a new account for `user`, drawing a new random username on the (unlikely) clash.
async fn create_account(store: &dyn Store, user: &User, now: Timestamp) -> Result<SipAccount, ProvisionError> {
    let mut attempt = 0;
    loop {
        let account = accounts::new_account(user, now);
        match store.put_sip_account(&account).await {
            Ok(()) => {
                tracing::debug!(user = %user.username, endpoint = %account.username, "SIP account created");
                return Ok(account);
            }
            Err(StoreError::Conflict { what: Unique::SipUsername, .. }) if attempt < 5 => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Extension, NewUser, UserUpdate};
    use crate::store::SqliteStore;

    async fn setup() -> (tempfile::TempDir, Arc<dyn Store>, Provisioner) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("hub.db"), 2).await.unwrap());
        let mut config = Config::default();
        config.store.data_dir = dir.path().to_path_buf();
        let p = Provisioner::new(store.clone(), ProvisionSettings::from_config(&config).unwrap()).unwrap();
        (dir, store, p)
    }

    async fn add(store: &Arc<dyn Store>, name: &str, ext: Option<&str>) -> User {
        let new = NewUser {
            username: name.into(),
            display_name: name.into(),
            extension: ext.map(|e| Extension::new(e).unwrap()),
            ..Default::default()
        };
        store.create_user(new).await.unwrap()
    }

    #[tokio::test]
    async fn without_asterisk_the_work_is_written_and_left_pending() {
        let (dir, store, p) = setup().await;
        let alice = add(&store, "alice", Some("1001")).await;
        add(&store, "nobody", None).await;
        let report = p.run(&PassOptions::default(), &Quiet).await.unwrap();
        assert_eq!(report.accounts_created, 1, "only users with an extension get an endpoint");
        assert_eq!(report.pending, 1);
        assert!(report.pending_reason.as_deref().unwrap().contains("pbx.ami_url"), "{report:?}");
        assert_eq!(report.files_changed.len(), 3, "{report:?}");
        let users = std::fs::read_to_string(dir.path().join("asterisk/hub-pjsip-users.conf")).unwrap();
        let account = store.sip_account(&alice.id).await.unwrap().unwrap();
        assert!(users.contains(&format!("[{}]", account.username)), "{users}");
        let records = store.provision_records().await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].status, records[0].applied.clone()), (ProvisionStatus::Pending, None));

        // The same state again: nothing new is written, the work stays pending, the revision
        // does not move (a restart would find exactly this).
        let again = p.run(&PassOptions::default(), &Quiet).await.unwrap();
        assert!(again.files_changed.is_empty() && again.accounts_created == 0, "{again:?}");
        assert_eq!(store.provision_records().await.unwrap()[0].desired, records[0].desired);
    }

    #[tokio::test]
    async fn secrets_rotate_when_due_and_the_revision_follows() {
        let (_dir, store, p) = setup().await;
        let bob = add(&store, "bob", Some("1002")).await;
        p.run(&PassOptions::default(), &Quiet).await.unwrap();
        let before = store.sip_account(&bob.id).await.unwrap().unwrap();
        let rev_before = store.provision_records().await.unwrap()[0].desired.clone();
        let report = p.run(&PassOptions::default(), &Quiet).await.unwrap();
        assert_eq!(report.rotated, 0, "not due yet");

        // A day later (the account's clock moved back a day): due.
        let old =
            SipAccount { rotated_at: Timestamp::from_millis(before.rotated_at.as_millis() - 86_400_000), ..before };
        store.put_sip_account(&old).await.unwrap();
        let report = p.run(&PassOptions::default(), &Quiet).await.unwrap();
        assert_eq!(report.rotated, 1, "{report:?}");
        let after = store.sip_account(&bob.id).await.unwrap().unwrap();
        assert_ne!(after.secret.expose(), old.secret.expose());
        assert_eq!(after.username, old.username, "the endpoint keeps its name");
        assert_ne!(store.provision_records().await.unwrap()[0].desired, rev_before, "a new secret is a new revision");
    }

    #[tokio::test]
    async fn a_disabled_user_is_marked_for_removal() {
        let (_dir, store, p) = setup().await;
        let carol = add(&store, "carol", Some("1003")).await;
        p.run(&PassOptions::default(), &Quiet).await.unwrap();
        store.update_user(&carol.id, &UserUpdate { disabled: Some(true), ..Default::default() }).await.unwrap();
        let report = p.run(&PassOptions::default(), &Quiet).await.unwrap();
        assert_eq!(report.files_changed, ["hub-pjsip-users.conf", "hub-extensions.conf"], "{report:?}");
        let record = &store.provision_records().await.unwrap()[0];
        assert_eq!(record.desired, None, "the endpoint must go");
        assert!(record.is_pending());
    }
}
