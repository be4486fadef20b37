//! Composition root (L6): parses the command line, loads configuration, picks the concrete
//! backends and wires the modules together. The only place that knows every module.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod browser_numbers;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::calls::Calls;
use crate::cli::{self, Cli, Command, ConfigCommand, Exit, UsersCommand};
use crate::config::AmiTarget;
use crate::config::{Config, LogConfig, LogFormat};
use crate::directory::Directory;
use crate::pbx::provision::{ProvisionSettings, Provisioner};
use crate::pbx::provision_loop::{LoopTiming, ProvisionLoop};
use crate::pbx::{EventLink, LinkHandle, LinkOptions, SipPresence};
use crate::sip;
use crate::store::{self, Store};
use crate::web::{self, OriginPolicy, RateLimiter, Services, Settings, WebState, tls};

/// Entry point of the `hub` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match Config::load(&cli.sources()) {
        Ok(l) => l,
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("error: {line}");
            }
            return Exit::Config.into();
        }
    };
    if let Err(e) = init_tracing(&loaded.config.log) {
        eprintln!("error: {e}");
        return Exit::Config.into();
    }
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    let exit = match cli.command {
        Command::Serve => {
            // `[ivr] routes` are read again when the config file changes.
            let routes = loaded.file.clone().map(|file| {
                let sources = cli.sources();
                let load: crate::ivr::handler::LoadRoutes =
                    Box::new(move || Config::load(&sources).map(|l| l.config.ivr.routes).map_err(|e| e.to_string()));
                crate::ivr::handler::RoutesReload::new(file, load)
            });
            runtime.block_on(serve(loaded.config, routes))
        }
        Command::Config(ConfigCommand::Show) => {
            cli::config_show(&loaded);
            Exit::Ok
        }
        Command::Config(ConfigCommand::Check) => match check(&loaded.config) {
            Ok(()) => {
                cli::config_check(&loaded);
                Exit::Ok
            }
            Err(e) => {
                eprintln!("error: {e}");
                Exit::Config
            }
        },
        Command::Users(command) => runtime.block_on(async {
            let store = match store::open(&loaded.config.store).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Exit::Failure;
                }
            };
            let config = &loaded.config;
            let directory = Directory::new(store.clone(), config.pbx.extension_range);
            let origin = config.web.origin(config.web.bind);
            let changes_asterisk = matches!(
                command,
                UsersCommand::Add { .. } | UsersCommand::Disable { .. } | UsersCommand::Enable { .. }
            );
            let mut exit = match Auth::new(store.clone(), directory.clone(), &config.auth, &origin) {
                Ok(auth) => cli::users(command, &directory, &auth).await,
                Err(e) => {
                    eprintln!("error: {e}");
                    Exit::Config
                }
            };
            if exit == Exit::Ok && changes_asterisk && config.pbx.ami_url.is_some() {
                exit = cli::apply_after_user_change(store.clone(), config).await;
            }
            store.close().await;
            exit
        }),
        Command::Pbx(command) => runtime.block_on(async {
            let store = match store::open(&loaded.config.store).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Exit::Failure;
                }
            };
            let exit = cli::pbx(command, &loaded.config, store.clone()).await;
            store.close().await;
            exit
        }),
        Command::Sip(cli::SipCommand::Status { out }) => {
            runtime.block_on(cli::sip_status(&loaded.config.store.data_dir, out.json))
        }
        Command::Sip(cli::SipCommand::Calls { out }) => {
            runtime.block_on(cli::sip_calls(&loaded.config.store.data_dir, out.json))
        }
        Command::Sip(cli::SipCommand::Hangup { id }) => {
            runtime.block_on(cli::sip_control(&loaded.config.store.data_dir, sip::control::Request::Hangup { id }))
        }
        Command::Sip(cli::SipCommand::Dial { extension }) => {
            runtime.block_on(cli::sip_dial(&loaded.config.store.data_dir, &extension))
        }
        Command::Sip(cli::SipCommand::Transfer { id, extension }) => runtime.block_on(cli::sip_control(
            &loaded.config.store.data_dir,
            sip::control::Request::Transfer { id, to: extension },
        )),
        Command::Ivr(command) => cli::ivr(command, &loaded.config),
        Command::Version(out) => {
            cli::version(&out);
            Exit::Ok
        }
    };
    runtime.shutdown_timeout(Duration::from_secs(1));
    exit.into()
}

/// Checks what `config check` can check beyond the config itself without starting anything.
fn check(config: &Config) -> Result<(), String> {
    tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .map_err(|e| format!("key log.level: {:?} is not a valid log filter: {e}", config.log.level))?;
    tls::check_files(&config.web).map_err(|e| e.to_string())?;
    if let (Some(cert), Some(key)) = (&config.sip.tls_cert, &config.sip.tls_key) {
        crate::pem::server_config(cert, key).map_err(|e| format!("key sip.tls_cert: {e}"))?;
    }
    Ok(())
}

fn init_tracing(log: &LogConfig) -> Result<(), String> {
    let mut filter = tracing_subscriber::EnvFilter::try_new(&log.level)
        .map_err(|e| format!("key log.level: {:?} is not a valid log filter: {e}", log.level))?;
    if !log.level.contains("rsipstack") {
        // rsipstack warns at every start that it cannot serve the hub's channel listener
        // itself, which is by design (sip/bridge.rs); its real errors still show.
        filter =
            filter.add_directive("rsipstack::transport::transport_layer=error".parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match log.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}

/// Why `hub serve` could not start; each is one line for the operator.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("data directory {dir} is not usable: {reason}")]
    DataDir { dir: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("sign-in setup: {0}")]
    Auth(String),
    #[error("Asterisk provisioning setup: {0}")]
    Pbx(String),
}

/// `hub serve`: runs until SIGINT or SIGTERM, then drains and stops.
async fn serve(config: Config, routes: Option<crate::ivr::handler::RoutesReload>) -> Exit {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Each call holds two RTP/RTCP sockets: take every descriptor the system allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    let Started { listener, tls, store, parts } = match start(&config).await {
        Ok(started) => started,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("error: {e}");
            return Exit::Failure;
        }
    };
    let cancel = CancellationToken::new();
    let stopping = CancellationToken::new();
    // The media engine answers hub numbers for SIP callers and browsers alike.
    let voicemail = crate::voicemail::Voicemail::new(store.clone(), &config.voicemail, None);
    let ivr = match ivr_handler(&config, store.clone(), routes, voicemail.notifier()) {
        Ok(ivr) => ivr,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the IVR");
            eprintln!("error: cannot start the IVR: {e}");
            return Exit::Failure;
        }
    };
    let apps = match media_apps(&config, config.sip.listen.ip(), ivr) {
        Ok(apps) => apps,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the media engine");
            eprintln!("error: cannot start the media engine: {e}");
            return Exit::Failure;
        }
    };
    let sip_task = match start_sip(&config, apps.clone(), cancel.clone()).await {
        Ok(task) => task,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("error: {e}");
            return Exit::Failure;
        }
    };
    let numbers: Arc<dyn crate::calls::service::HubNumbers> =
        Arc::new(browser_numbers::BrowserNumbers { apps, store: store.clone() });
    let (calls, calls_task) =
        Calls::start_with_numbers(config.calls.clone(), store.clone(), Some(numbers), cancel.clone());
    voicemail.attach_calls(calls.clone());
    let services = Services { store: store.clone(), auth: parts.auth, calls, shutdown: stopping.clone() };
    let state = WebState::new(services, parts.settings).with_voicemail(voicemail.clone());
    let mut tasks = vec![
        voicemail.spawn_purger(cancel.clone()),
        state.auth.sessions().spawn_purger(PURGE_EVERY, cancel.clone()),
        spawn_attempt_purger(state.auth.clone(), cancel.clone()),
    ];
    let link = match (&config.pbx.ami_url, &state.sip.presence) {
        (Some(url), Some(presence)) => AmiTarget::parse(url.expose()).ok().map(|target| {
            EventLink::spawn(target, config.pbx.ami_auth, presence.clone(), cancel.clone(), LinkOptions::default())
        }),
        _ => None,
    };
    if let Some(provisioner) = parts.provisioner {
        let timing = LoopTiming {
            quiet: config.pbx.coalesce_quiet,
            max_wait: config.pbx.coalesce_max,
            resync: config.pbx.resync_every,
            retry_min: Duration::from_millis(500).min(config.pbx.retry_max),
            retry_max: config.pbx.retry_max,
        };
        let asterisk_up = link.as_ref().map(LinkHandle::subscribe_connected);
        let (_loop, task) =
            ProvisionLoop::spawn(provisioner, parts.directory.subscribe(), asterisk_up, timing, cancel.clone());
        tasks.push(task);
    }
    let app = web::router(state, &config.web.webapp_dir);
    let on_signal = async move {
        shutdown_signal().await;
        stopping.cancel();
    };
    let result = web::serve(listener, tls, app, on_signal, config.web.shutdown_grace).await;
    cancel.cancel();
    for task in tasks.into_iter().chain(sip_task) {
        let _ = task.await;
    }
    // The controller ends live calls and writes their records before the store closes.
    let _ = calls_task.await;
    if tokio::time::timeout(Duration::from_secs(1), store.close()).await.is_err() {
        tracing::warn!("store did not close within 1s");
    }
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            Exit::Ok
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            eprintln!("error: {e}");
            Exit::Failure
        }
    }
}

/// Starts the SIP user agent's transports when `[sip] enabled` says so (by default: when an
/// Asterisk is configured).
async fn start_sip(
    config: &Config,
    apps: Arc<crate::media::apps::Apps>,
    shutdown: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, sip::transport::TransportError> {
    if !config.sip.enabled.resolve(config.pbx.ami_url.is_some()) {
        return Ok(None);
    }
    let peers = config.sip.allowed_peers.iter().filter_map(|p| p.parse().ok()).collect();
    let agent = Arc::new(sip::agent::Agent::new(peers));
    // The stack stops after the registration has unregistered, not with everything else.
    let stack_stop = CancellationToken::new();
    let tls = match (&config.sip.tls_cert, &config.sip.tls_key) {
        (Some(cert), Some(key)) => Some(sip::transport::TlsListen {
            addr: config.sip.tls_listen,
            config: Arc::new(crate::pem::server_config(cert, key)?),
        }),
        _ => None,
    };
    let started = sip::transport::start(config.sip.listen, tls, agent, stack_stop.clone()).await?;
    let listening = started.listening;
    match listening.tls {
        Some(tls) => tracing::info!(udp = %listening.udp, tcp = %listening.tcp, %tls, "SIP user agent listening"),
        None => tracing::info!(udp = %listening.udp, tcp = %listening.tcp, "SIP user agent listening"),
    }
    let mut builder = rsipstack::EndpointBuilder::new();
    if config.sip.registrar.is_some() {
        builder.with_inspector(Box::new(sip::nonce_reuse::NonceReuse::new(
            &config.sip.username,
            config.sip.password.expose(),
        )));
    }
    let endpoint = builder
        .with_transport_layer(started.layer)
        .with_cancel_token(stack_stop.clone())
        .with_user_agent(&format!("hub/{}", env!("CARGO_PKG_VERSION")))
        .build();
    let inner = endpoint.inner.clone();
    let incoming = endpoint
        .incoming_transactions()
        .map_err(|e| sip::transport::TransportError::Bridge(sip::bridge::BridgeError::Stack(e.to_string())))?;
    let stack = tokio::spawn(async move {
        let _ = inner.serve().await;
    });
    // Calls: the media engine runs the built-in app of the dialled number (the echo test for
    // numbers without one).
    let app: Arc<dyn sip::media_port::MediaApp> = apps;
    let table = Arc::new(sip::call_table::CallTable::new(usize::try_from(config.sip.max_calls).unwrap_or(usize::MAX)));
    let settings = sip::calls::CallSettings {
        ring: config.sip.ring,
        rtp_timeout: config.sip.rtp_timeout,
        contact_user: config.sip.username.clone(),
        transfer_domain: config.sip.registrar.as_deref().and_then(sip::registration::registrar_domain),
        listen: listening.udp,
        outbound: match &config.sip.registrar {
            Some(r) => Some(sip::calls::Outbound {
                domain: sip::registration::registrar_domain(r).unwrap_or_default(),
                addr: sip::registration::registrar_addr(r)
                    .map_err(|e| sip::transport::TransportError::Bridge(sip::bridge::BridgeError::Stack(e)))?,
                username: config.sip.username.clone(),
                password: config.sip.password.clone(),
            }),
            None => None,
        },
    };
    let layer = Arc::new(rsipstack::dialog::dialog_layer::DialogLayer::new(endpoint.inner.clone()));
    let service = Arc::new(sip::calls::CallService::new(layer, table.clone(), app, settings));
    let calls = tokio::spawn(service.clone().serve(incoming, shutdown.clone()));
    if !config.sip.overload_lag.is_zero() {
        sip::overload::spawn(table.clone(), config.sip.overload_lag, shutdown.clone());
    }
    let control = match sip::control::serve(&config.store.data_dir, service.clone(), shutdown.clone()) {
        Ok(task) => Some(task),
        Err(e) => {
            tracing::warn!(error = %e, "no control socket: `hub sip calls` will not see this hub");
            None
        }
    };
    let mut registration = None;
    if let Some(registrar) = &config.sip.registrar {
        let addr = sip::registration::registrar_addr(registrar)
            .map_err(|e| sip::transport::TransportError::Bridge(sip::bridge::BridgeError::Stack(e)))?;
        started.bridge.connect(addr).await?;
        let reg = sip::registration::RegistrationConfig {
            registrar: registrar.clone(),
            registrar_addr: addr,
            username: config.sip.username.clone(),
            password: config.sip.password.clone(),
            expires: config.sip.register_expiry,
        };
        let (state, task) = sip::registration::spawn(endpoint.inner.clone(), reg, shutdown.clone());
        registration = Some((state, task));
    }
    // `hub sip status` (another process) reads what this one writes on every change.
    let data_dir = config.store.data_dir.clone();
    let status_dir = data_dir.clone();
    let status = sip::status::SipStatus {
        pid: std::process::id(),
        udp: listening.udp,
        tcp: listening.tcp,
        tls: listening.tls,
        registrar: config.sip.registrar.clone(),
        registration: sip::registration::RegistrationState::NotConfigured,
        updated_at: crate::model::Timestamp::now(),
    };
    write_sip_status(&data_dir, &status);
    let (mut state, registration) = match registration {
        Some((state, task)) => (Some(state), Some(task)),
        None => (None, None),
    };
    let reporter = tokio::spawn(async move {
        let Some(state) = state.as_mut() else { return };
        loop {
            let now = state.borrow_and_update().clone();
            let stopped = now == sip::registration::RegistrationState::Stopped;
            let status = sip::status::SipStatus {
                registration: now,
                updated_at: crate::model::Timestamp::now(),
                ..status.clone()
            };
            write_sip_status(&data_dir, &status);
            if stopped || state.changed().await.is_err() {
                return;
            }
        }
    });
    Ok(Some(tokio::spawn(async move {
        shutdown.cancelled().await;
        // Calls are hung up (BYE through the stack) before the stack stops.
        let _ = calls.await;
        if let Some(task) = control {
            let _ = task.await;
        }
        if let Some(task) = registration {
            let _ = task.await;
        }
        let _ = reporter.await;
        stack_stop.cancel();
        let _ = started.task.await;
        let _ = stack.await;
        drop(endpoint);
        // Not running any more: `hub sip status` must not report a stale state.
        let _ = std::fs::remove_file(sip::status::path(&status_dir));
    })))
}

fn write_sip_status(data_dir: &Path, status: &sip::status::SipStatus) {
    if let Err(e) = sip::status::write(data_dir, status) {
        tracing::warn!(error = %e, "cannot write the SIP status file");
    }
}

/// Forgets abandoned sign-in attempts every [`PURGE_EVERY`].
fn spawn_attempt_purger(auth: Auth, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => { auth.attempts().purge(); }
            }
        }
    })
}

/// How often expired sessions and sign-in attempts are purged.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// A hub ready to serve.
struct Started {
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    store: Arc<dyn Store>,
    parts: Parts,
}

/// What the web state is built from once the controller runs.
struct Parts {
    auth: Auth,
    settings: Settings,
    directory: Directory,
    provisioner: Option<Provisioner>,
}

/// Everything that can fail before serving, in an order that leaves nothing half-done.
async fn start(config: &Config) -> Result<Started, StartError> {
    let data_dir = &config.store.data_dir;
    ensure_writable(data_dir)?;
    let store = store::open(&config.store).await?;
    let tls = tls::prepare(&config.web, data_dir)?;
    let cookie_key = web::cookies::load_or_create_key(data_dir).map_err(|e| StartError::Auth(e.to_string()))?;
    let listener = std::net::TcpListener::bind(config.web.bind)
        .map_err(|source| StartError::Bind { addr: config.web.bind, source })?;
    let local = listener.local_addr().map_err(|source| StartError::Bind { addr: config.web.bind, source })?;
    let origin = config.web.origin(local);
    let directory = Directory::new(store.clone(), config.pbx.extension_range);
    let auth = Auth::new(store.clone(), directory.clone(), &config.auth, &origin).map_err(StartError::Auth)?;
    let provisioner = match config.pbx.ami_url {
        Some(_) => Some(
            ProvisionSettings::from_config(config)
                .and_then(|settings| Provisioner::new(store.clone(), settings))
                .map_err(|e| StartError::Pbx(e.to_string()))?,
        ),
        None => None,
    };
    let policy = OriginPolicy { fixed: config.web.public_url.as_ref().map(|_| origin.clone()) };
    let limiter = RateLimiter::new(config.auth.signin_rate_per_minute);
    let mode = if config.auth.issuer.is_some() { "oidc" } else { "demo" };
    tracing::info!(
        fingerprint = %tls.fingerprint,
        source = ?tls.source,
        cert = %tls.cert_path.display(),
        "TLS certificate (SHA-256)"
    );
    tracing::info!(addr = %local, url = %format!("{origin}/"), store = store.backend_name(), auth = mode, "listening");
    let presence = config.pbx.ami_url.as_ref().map(|_| SipPresence::new());
    let sip = web::SipWebSettings {
        wss_url: config.pbx.browser_wss_url(),
        realm: config.pbx.realm.clone(),
        presence: presence.clone(),
    };
    let settings =
        Settings { cookie_key, limiter, origin: policy, media: config.media.clone(), calls: config.calls.clone(), sip };
    Ok(Started { listener, tls: tls.server_config, store, parts: Parts { auth, settings, directory, provisioner } })
}

/// Creates the data directory if needed and proves it can be written.
fn ensure_writable(dir: &Path) -> Result<(), StartError> {
    let err = |reason: String| StartError::DataDir { dir: dir.display().to_string(), reason };
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok").map_err(|e| err(format!("not writable: {e}")))?;
    std::fs::remove_file(&probe).map_err(|e| err(format!("not writable: {e}")))?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "signal received"),
        () = term => tracing::info!(signal = "SIGTERM", "signal received"),
    }
}

/// The media engine and the built-in apps of `[media.numbers]`.
fn media_apps(
    config: &Config,
    ip: std::net::IpAddr,
    ivr: Arc<dyn crate::media::apps::NumberHandler>,
) -> std::io::Result<Arc<crate::media::apps::Apps>> {
    use crate::media::{echo::EchoApp, engine, ports::PortRange};
    let m = &config.media;
    let settings = engine::EngineSettings {
        prompts_dir: m.prompts_dir.clone(),
        recordings_dir: config.voicemail.recordings_dir.clone(),
        inband_dtmf: m.inband_dtmf,
        record: record_options(config),
        pacer_threads: m.pacer_threads,
    };
    let engine = engine::Engine::new(PortRange::new(ip, m.rtp_port_min, m.rtp_port_max), settings)?;
    let echo = EchoApp::new(PortRange::new(ip, m.rtp_port_min, m.rtp_port_max));
    Ok(Arc::new(crate::media::apps::Apps::new(engine, echo, m.numbers.clone()).with_handler(ivr)))
}

/// Recording defaults from `[media]` and `[voicemail]`: limits, silence, file format.
fn record_options(config: &Config) -> crate::media::recorder::RecordOptions {
    use crate::media::recorder::{RecordFormat, RecordOptions};
    let m = &config.media;
    let millis = |d: std::time::Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    RecordOptions {
        max_ms: Some(millis(config.voicemail.max_message)),
        silence_threshold_dbfs: m.silence_threshold_dbfs,
        silence_ms: (!m.record_silence.is_zero()).then(|| millis(m.record_silence)),
        format: if config.voicemail.recording_format.is_opus() { RecordFormat::Opus } else { RecordFormat::Wav },
        ..RecordOptions::default()
    }
}

/// The IVR: the scripts of `[ivr] routes`, answering SIP and browser callers.
fn ivr_handler(
    config: &Config,
    store: Arc<dyn Store>,
    routes: Option<crate::ivr::handler::RoutesReload>,
    deposited: Arc<dyn Fn(crate::model::UserId) + Send + Sync>,
) -> Result<Arc<dyn crate::media::apps::NumberHandler>, String> {
    use crate::ivr;
    let limits = ivr::Limits::new(&config.ivr, &config.voicemail);
    let scripts = ivr::Scripts::new(&config.ivr.scripts_dir, config.ivr.routes.clone(), &limits);
    // A routed script that is missing or broken is said at start, not found by the first caller.
    for (number, script) in &config.ivr.routes {
        if let Err(e) = scripts.check(script) {
            tracing::warn!(%number, %script, error = %e, "IVR route's script does not compile; its callers will hear the error prompt");
        }
    }
    let services = ivr::services::HubServices::new(
        tokio::runtime::Handle::current(),
        store,
        limits.http_allow.clone(),
        limits.http_timeout,
        config.voicemail.recordings_dir.clone(),
        deposited,
    )?;
    let tts = ivr::tts::Tts::new(config.store.data_dir.join("tts"));
    let mut handler = ivr::handler::IvrHandler::new(
        scripts,
        limits,
        Arc::new(services),
        tts,
        record_options(config),
        tokio::runtime::Handle::current(),
    );
    if let Some(routes) = routes {
        handler = handler.with_reload(routes);
    }
    handler = handler
        .with_voicemail(&config.pbx.voicemail_prefix, &config.ivr.voicemail_script)
        .with_greetings(config.voicemail.recordings_dir.clone());
    Ok(Arc::new(handler))
}
