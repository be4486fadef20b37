use std::io::Write;
use std::time::Duration;

use super::*;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn load(
    text: &str,
    env: &[(&str, &str)],
    flags: Vec<FlagOverride>,
) -> (Result<Loaded, ConfigError>, tempfile::NamedTempFile) {
    let f = file(text);
    let sources = Sources {
        file: Some(f.path().to_path_buf()),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        flags,
    };
    (Config::load(&sources), f)
}

fn err_text(text: &str, env: &[(&str, &str)]) -> (String, String) {
    let (r, f) = load(text, env, vec![]);
    (r.unwrap_err().to_string(), f.path().display().to_string())
}

#[test]
fn empty_file_gives_working_defaults() {
    let (r, _f) = load("", &[], vec![]);
    let loaded = r.unwrap();
    assert!(loaded.warnings.is_empty());
    assert_eq!(loaded.config, Config::default());
    assert_eq!(loaded.config.web.bind.to_string(), "127.0.0.1:8443");
    assert_eq!(loaded.config.auth.session_lifetime, Duration::from_secs(12 * 3600));
}

#[test]
fn no_file_at_all_gives_defaults() {
    let loaded = Config::load(&Sources { file: None, env: vec![], flags: vec![] });
    // The working directory of unit tests has no hub.toml.
    assert_eq!(loaded.unwrap().config, Config::default());
}

#[test]
fn layers_apply_in_order_file_env_flags() {
    let text = "[web]\nbind = \"127.0.0.1:9000\"\n[store]\ndata_dir = \"/tmp/from-file\"\nmax_connections = 3\n";
    let env = [("HUB_STORE__DATA_DIR", "/tmp/from-env"), ("HUB_STORE__MAX_CONNECTIONS", "5")];
    let flags = vec![FlagOverride { flag: "--data-dir", key: "store.data_dir", value: "/tmp/from-flag".into() }];
    let (r, _f) = load(text, &env, flags);
    let c = r.unwrap().config;
    assert_eq!(c.web.bind.port(), 9000, "file value kept when nothing overrides it");
    assert_eq!(c.store.max_connections, 5, "env beats file");
    assert_eq!(c.store.data_dir, std::path::PathBuf::from("/tmp/from-flag"), "flag beats env");
}

#[test]
fn env_values_are_typed_like_their_keys() {
    let env = [
        ("HUB_AUTH__CLIENT_ID", "12345"),
        ("HUB_AUTH__SCOPES", "openid, profile"),
        ("HUB_MEDIA__STUN_URLS", "[\"stun:a:3478\", \"stun:b:3478\"]"),
        ("HUB_AUTH__SESSION_LIFETIME", "90m"),
        ("HUB_IVR__ROUTES__801", "directory.rhai"),
    ];
    let (r, _f) = load("", &env, vec![]);
    let c = r.unwrap().config;
    assert_eq!(c.auth.client_id, "12345");
    assert_eq!(c.auth.scopes, vec!["openid", "profile"]);
    assert_eq!(c.media.stun_urls, vec!["stun:a:3478", "stun:b:3478"]);
    assert_eq!(c.auth.session_lifetime, Duration::from_secs(5400));
    assert_eq!(c.ivr.routes.get("801").map(String::as_str), Some("directory.rhai"));
}

#[test]
fn unknown_keys_and_variables_are_warned_about_by_name() {
    let text = "[web]\nbind = \"127.0.0.1:8443\"\nbnid = 1\n\n[nonsense]\nx = 1\n";
    let env = [("HUB_WEB__BINDD", "x"), ("HUB_FOO", "1"), ("HUB_TEST_MONGODB_URL", "mongodb://x"), ("HUB_CONFIG", "x")];
    let (r, f) = load(text, &env, vec![]);
    let w = r.unwrap().warnings;
    let p = f.path().display().to_string();
    assert!(w.contains(&format!("{p}:3: unknown config key web.bnid (ignored)")), "{w:#?}");
    assert!(w.contains(&format!("{p}:5: unknown config key nonsense (ignored)")), "{w:#?}");
    assert!(w.contains(&"unknown environment variable HUB_WEB__BINDD (no config key web.bindd)".to_string()), "{w:#?}");
    assert!(w.iter().any(|l| l.starts_with("unknown environment variable HUB_FOO ")), "{w:#?}");
    assert_eq!(w.len(), 4, "HUB_TEST_* and HUB_CONFIG are not config keys: {w:#?}");
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let (e, p) = err_text("[web]\nbind = \"127.0.0.1:8443\n", &[]);
    assert!(e.starts_with(&format!("{p}:2:")), "{e}");
    assert!(e.contains("invalid TOML"), "{e}");
}

#[test]
fn type_errors_name_file_line_and_key() {
    let (e, p) = err_text("# comment\n[store]\ndata_dir = \"d\"\nmax_connections = \"many\"\n", &[]);
    assert!(e.starts_with(&format!("{p}:4: key store.max_connections: ")), "{e}");
    let (e, p) = err_text("[web]\n\nbind = \"not an address\"\n", &[]);
    assert!(e.starts_with(&format!("{p}:3: key web.bind: ")), "{e}");
    let (e, p) = err_text("[auth]\nsession_lifetime = \"soon\"\n", &[]);
    assert!(e.starts_with(&format!("{p}:2: key auth.session_lifetime: ")), "{e}");
    let (e, p) = err_text("[log]\nformat = \"xml\"\n", &[]);
    assert!(e.starts_with(&format!("{p}:2: key log.format: ")) && e.contains("human"), "{e}");
}

#[test]
fn env_and_flag_errors_name_their_source() {
    let (e, _) = err_text("", &[("HUB_STORE__MAX_CONNECTIONS", "lots")]);
    assert_eq!(
        e,
        "environment variable HUB_STORE__MAX_CONNECTIONS: key store.max_connections: expected an integer, got \"lots\""
    );
    let (e, _) = err_text("", &[("HUB_WEB__BIND", "nowhere")]);
    assert!(e.starts_with("environment variable HUB_WEB__BIND: key web.bind: "), "{e}");
    let flags = vec![FlagOverride { flag: "--bind", key: "web.bind", value: "x:y".into() }];
    let (r, _f) = load("", &[], flags);
    let e = r.unwrap_err().to_string();
    assert!(e.starts_with("flag --bind: key web.bind: "), "{e}");
}

#[test]
fn semantic_errors_name_line_and_key() {
    let (e, p) = err_text("[pbx]\nextension_range = \"1000-1999\"\nami_url = \"http://pbx\"\n", &[]);
    assert_eq!(e, format!("{p}:3: key pbx.ami_url: must start with ami://"));
    let (e, p) = err_text("[pbx]\nextension_range = \"1999-1000\"\n", &[]);
    assert!(e.starts_with(&format!("{p}:2: key pbx.extension_range: ")), "{e}");
    let (e, p) = err_text("[web]\ntls_cert = \"c.pem\"\n", &[]);
    assert_eq!(e, format!("{p}:1: key web.tls_key: tls_cert is set but tls_key is not: give both or neither"));
    let (e, _) = err_text("[media]\nrtp_port_min = 3000\nrtp_port_max = 2000\n", &[]);
    assert!(e.contains(":3: key media.rtp_port_max: must be above rtp_port_min"), "{e}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let (e, _) = err_text("[media]\nptime_ms = 7\n[store]\nmax_connections = 0\n", &[]);
    assert_eq!(e.lines().count(), 2, "{e}");
}

#[test]
fn demo_mode_refuses_non_loopback_binds() {
    let (e, _) = err_text("[web]\nbind = \"0.0.0.0:8443\"\n", &[]);
    assert!(e.contains("key auth.issuer") && e.contains("demo sign-in is only offered on loopback"), "{e}");
    let provider = "[auth]\nissuer = \"https://id.example.org\"\nclient_id = \"hub\"\n";
    let (e, _) = err_text(&format!("[web]\nbind = \"0.0.0.0:8443\"\n{provider}"), &[]);
    assert!(e.contains("key web.public_url") && e.contains("cannot tell the identity provider"), "{e}");
    let text = format!("[web]\nbind = \"0.0.0.0:8443\"\npublic_url = \"https://hub.example.org\"\n{provider}");
    let (r, _f) = load(&text, &[], vec![]);
    assert!(r.is_ok(), "{r:?}");
    let (e, _) = err_text("[auth]\nissuer = \"http://id.example.org\"\nclient_id = \"hub\"\n", &[]);
    assert!(e.contains("must be an https:// URL"), "{e}");
    let (r, _f) = load("[auth]\nissuer = \"http://127.0.0.1:3000\"\nclient_id = \"hub\"\n", &[], vec![]);
    assert!(r.is_ok(), "plain http for a provider on this machine: {r:?}");
}

#[test]
fn missing_explicit_file_is_an_error() {
    let sources = Sources { file: Some("/nonexistent/hub.toml".into()), env: vec![], flags: vec![] };
    let e = Config::load(&sources).unwrap_err().to_string();
    assert!(e.starts_with("cannot read config file /nonexistent/hub.toml: "), "{e}");
}

#[test]
fn show_redacts_secrets() {
    let text = "[auth]\nclient_secret = \"topsecret\"\n[pbx]\nami_url = \"ami://admin:amipass@pbx:5038\"\n\
                [store]\nurl = \"mongodb://hub:dbpass@db/\"\n[sip]\npassword = \"sippass\"\n";
    let (r, _f) = load(text, &[("HUB_MEDIA__TURN_SECRET", "turnpass")], vec![]);
    let c = r.unwrap().config;
    let shown = c.to_toml();
    for secret in ["topsecret", "amipass", "dbpass", "sippass", "turnpass"] {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
        assert!(!format!("{c:?}").contains(secret), "{secret} leaked in Debug");
    }
    assert!(shown.contains("ami://admin:[redacted]@pbx:5038"), "{shown}");
    assert_eq!(c.auth.client_secret.expose(), "topsecret");
    // What `config show` prints is itself a valid config (secrets aside).
    assert!(toml::from_str::<Config>(&shown).is_ok());
}

#[test]
fn the_example_file_is_valid_and_complete() {
    let text = include_str!("../../../hub.example.toml");
    let (r, _f) = load(text, &[], vec![]);
    let loaded = r.unwrap();
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    // Every key of the defaults appears in the example, commented or not.
    let defaults = toml::Value::try_from(Config::default()).unwrap();
    let mut missing = Vec::new();
    for (section, table) in defaults.as_table().unwrap() {
        for (key, value) in table.as_table().unwrap() {
            if value.is_table() {
                assert!(text.contains(&format!("[{section}.{key}]")), "no [{section}.{key}]");
                continue;
            }
            if !text.contains(&format!("\n{key} =")) && !text.contains(&format!("\n# {key} =")) {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    assert!(missing.is_empty(), "hub.example.toml lacks {missing:?}");
}

#[test]
fn voicemail_recording_format_is_wav_or_opus() {
    assert_eq!(Config::default().voicemail.recording_format, voicemail::RecordingFormat::Wav, "WAV unless configured");
    let (r, _f) = load("[voicemail]\nrecording_format = \"opus\"\n", &[], vec![]);
    assert_eq!(r.unwrap().config.voicemail.recording_format, voicemail::RecordingFormat::Opus);
    let (r, _f) = load("", &[("HUB_VOICEMAIL__RECORDING_FORMAT", "opus")], vec![]);
    assert!(r.unwrap().config.voicemail.recording_format.is_opus());
    let (e, p) = err_text("[voicemail]\nmax_message = \"2m\"\nrecording_format = \"mp3\"\n", &[]);
    assert!(e.starts_with(&format!("{p}:3: key voicemail.recording_format: ")), "{e}");
    assert!(e.contains("mp3") && e.contains("wav") && e.contains("opus"), "names the value and the choices: {e}");
}
