//! Asterisk provisioning end to end: the real hub binary writes config, reloads and verifies
//! against the *simulated* Asterisk manager (`common/ami_sim.rs`: real response shapes, its
//! objects loaded from the files the hub wrote, as strictly as Asterisk loads them).

use std::path::Path;
use std::process::Output;

use hub::model::{NewUser, ProvisionStatus};
use hub::store::{DirectoryStore, ProvisioningStore, SipAccountStore, SqliteStore};
use serde_json::Value;

use crate::common::ami_sim::{AsteriskSim, SimConfig};
use crate::common::idp::browser;
use crate::common::{Hub, WAIT, run, text};

fn sim_config(dir: &Path) -> SimConfig {
    SimConfig::for_dir(&dir.join("data/asterisk"))
}

fn env(sim_url: &str) -> Vec<(&'static str, String)> {
    vec![("HUB_PBX__AMI_URL", sim_url.to_string()), ("HUB_PBX__AMI_AUTH", "md5".to_string())]
}

/// Runs `hub <args>` against the simulated Asterisk, off the async runtime.
async fn hub(dir: &Path, url: &str, args: &[&str]) -> Output {
    let (dir, args, env) = (dir.to_path_buf(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>(), env(url));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run(&dir, &args, &env)
    })
    .await
    .unwrap()
}

fn ok(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status.code());
    stdout
}

fn json(out: &Output) -> Value {
    let (stdout, stderr) = text(out);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// Adds a user with no Asterisk configured for the command, so nothing is applied yet.
async fn add_user(dir: &Path, _url: &str, username: &str, name: &str) {
    let (dir, username, name) = (dir.to_path_buf(), username.to_string(), name.to_string());
    let out = tokio::task::spawn_blocking(move || {
        run(&dir, &["users", "add", "--username", &username, "--name", &name], &[])
    })
    .await
    .unwrap();
    ok(&out);
}

async fn store(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("data/hub.db"), 2).await.unwrap()
}

async fn endpoint_of(dir: &Path, username: &str) -> (String, String) {
    let s = store(dir).await;
    let user = s.user_by_username(username).await.unwrap().unwrap();
    let account = s.sip_account(&user.id).await.unwrap().expect("a SIP account");
    (account.username, account.secret.expose().to_string())
}

#[tokio::test]
async fn users_are_provisioned_with_one_reload_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let sim = AsteriskSim::start(sim_config(dir.path())).await;
    let url = sim.url();
    add_user(dir.path(), &url, "alice", "Alice Liddell").await;
    // Names from an identity provider can hold anything; the CLI refuses control characters,
    // so this one goes straight into the store, as a sign-in would put it.
    {
        let s = store(dir.path()).await;
        let new = NewUser {
            username: "bob".into(),
            display_name: "Bob\n[evil]\r\n#include /etc/passwd ; x=1 \"q\" <b> \\".into(),
            extension: Some(hub::model::Extension::new("1500").unwrap()),
            ..Default::default()
        };
        s.create_user(new).await.unwrap();
        hub::store::Store::close(&s).await;
    }
    add_user(dir.path(), &url, "carol", "Carol Müller").await;

    let out = hub(dir.path(), &url, &["pbx", "apply", "--json"]).await;
    let report = json(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(report["provisioned"].as_array().unwrap().len(), 3, "{report}");
    assert_eq!(report["accounts_created"], 3);
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(sim.reloads(), ["res_pjsip.so", "pbx_config.so"], "one reload of both modules");

    // What Asterisk loaded is what the store holds, the hostile name changed no structure.
    for user in ["alice", "bob", "carol"] {
        let (endpoint, secret) = endpoint_of(dir.path(), user).await;
        let ep =
            sim.object("endpoint", &endpoint).unwrap_or_else(|| panic!("no endpoint {endpoint}: {:?}", sim.rejected()));
        assert_eq!(ep.kind, "endpoint");
        let auth = sim.object("auth", &ep.options["auth"]).expect("auth object");
        assert_eq!(auth.options["password"], secret);
        assert_eq!(auth.options["username"], endpoint);
        assert_eq!(sim.object("aor", &ep.options["aors"]).unwrap().options["max_contacts"], "10");
        assert!(ep.options["allow"].starts_with("ulaw"), "{:?}", ep.options);
    }
    assert!(sim.rejected().is_empty(), "{:?}", sim.rejected());
    assert!(!sim.endpoints().iter().any(|e| e.contains("evil")), "{:?}", sim.endpoints());
    let users_conf = std::fs::read_to_string(dir.path().join("data/asterisk/hub-pjsip-users.conf")).unwrap();
    assert!(!users_conf.lines().any(|l| l.trim_start().starts_with('#')), "{users_conf}");
    assert!(sim.dialplan_contexts().iter().any(|c| c == "hub-users"), "{:?}", sim.dialplan_contexts());

    // Nothing changed: nothing is written or reloaded.
    let again = ok(&hub(dir.path(), &url, &["pbx", "apply"]).await);
    assert!(again.contains("nothing to do"), "{again}");
    assert_eq!(sim.reloads().len(), 2);

    let status = json(&hub(dir.path(), &url, &["pbx", "status", "--json"]).await);
    assert_eq!(status["reachable"], true, "{status}");
    assert_eq!(status["asterisk_version"], "22.10.1");
    assert_eq!((status["provisioned"].as_u64(), status["pending"].as_u64()), (Some(3), Some(0)), "{status}");
    assert_eq!(status["last_reload"]["ok"], true);
    let table = ok(&hub(dir.path(), &url, &["pbx", "status"]).await);
    assert!(table.contains("3 provisioned, 0 failed") && table.contains("Asterisk 22.10.1"), "{table}");

    // `render` masks passwords; `render --diff` is empty right after an apply.
    let rendered = ok(&hub(dir.path(), &url, &["pbx", "render"]).await);
    let (_, alice_secret) = endpoint_of(dir.path(), "alice").await;
    assert!(rendered.contains("password=[redacted") && !rendered.contains(&alice_secret), "{rendered}");
    let diff = ok(&hub(dir.path(), &url, &["pbx", "render", "--diff"]).await);
    assert!(diff.starts_with("no differences"), "{diff}");
}

#[tokio::test]
async fn disabling_a_user_removes_the_endpoint_and_hangs_up_their_calls() {
    let dir = tempfile::tempdir().unwrap();
    let sim = AsteriskSim::start(sim_config(dir.path())).await;
    let url = sim.url();
    add_user(dir.path(), &url, "dave", "Dave").await;
    add_user(dir.path(), &url, "erin", "Erin").await;
    ok(&hub(dir.path(), &url, &["pbx", "apply"]).await);
    let (dave, _) = endpoint_of(dir.path(), "dave").await;
    let (erin, _) = endpoint_of(dir.path(), "erin").await;
    sim.add_channel(&format!("PJSIP/{dave}-00000001"));
    sim.add_channel(&format!("PJSIP/{erin}-00000002"));

    // With Asterisk configured, the CLI applies the change at once.
    let out = hub(dir.path(), &url, &["users", "disable", "dave"]).await;
    ok(&out);
    let (_, stderr) = text(&out);
    assert!(stderr.contains(&format!("asterisk: removed endpoint {dave}")), "{stderr}");
    assert!(stderr.contains(&format!("asterisk: hung up PJSIP/{dave}-00000001")), "{stderr}");
    assert_eq!(sim.object("endpoint", &dave), None);
    assert!(sim.object("endpoint", &erin).is_some());
    assert_eq!(sim.channels(), [format!("PJSIP/{erin}-00000002")], "only the disabled user's call ended");
    assert_eq!(sim.hung_up(), [format!("PJSIP/{dave}-00000001")]);

    // Re-enabled where no Asterisk is configured: the diff shows what `apply` will add, and
    // the same endpoint name comes back.
    let enable = run(dir.path(), &["users", "enable", "dave"], &[]);
    ok(&enable);
    let diff = ok(&hub(dir.path(), &url, &["pbx", "render", "--diff"]).await);
    assert!(diff.contains(&format!("+[{dave}]")), "the diff shows the endpoint coming back:\n{diff}");
    assert!(!diff.contains(&format!("+[{erin}]")), "{diff}");
    let report = json(&hub(dir.path(), &url, &["pbx", "apply", "--json"]).await);
    assert_eq!(report["provisioned"], serde_json::json!([dave]), "{report}");
}

#[tokio::test]
async fn rotation_replaces_one_users_secret_on_asterisk() {
    let dir = tempfile::tempdir().unwrap();
    let sim = AsteriskSim::start(sim_config(dir.path())).await;
    let url = sim.url();
    add_user(dir.path(), &url, "fay", "Fay").await;
    add_user(dir.path(), &url, "gus", "Gus").await;
    ok(&hub(dir.path(), &url, &["pbx", "apply"]).await);
    let (fay, fay_old) = endpoint_of(dir.path(), "fay").await;
    let (gus, gus_old) = endpoint_of(dir.path(), "gus").await;

    let report = json(&hub(dir.path(), &url, &["pbx", "rotate", "--user", "fay", "--json"]).await);
    assert_eq!(report["rotated"], 1, "{report}");
    assert_eq!(report["provisioned"], serde_json::json!([fay]), "{report}");
    let (_, fay_new) = endpoint_of(dir.path(), "fay").await;
    assert_ne!(fay_new, fay_old);
    assert!(fay_new.len() >= 22, "at least 128 bits");
    let auth = |ep: &str| {
        let auth = sim.object("endpoint", ep).unwrap().options["auth"].clone();
        sim.object("auth", &auth).unwrap().options["password"].clone()
    };
    assert_eq!(auth(&fay), fay_new);
    assert_eq!(auth(&gus), gus_old, "the other user keeps their secret");

    let report = json(&hub(dir.path(), &url, &["pbx", "rotate", "--json"]).await);
    assert_eq!(report["rotated"], 2, "{report}");
    assert_ne!(auth(&gus), gus_old);
    let _ = gus;
}

#[tokio::test]
async fn a_reload_that_succeeds_but_drops_an_endpoint_is_reported_failed() {
    let dir = tempfile::tempdir().unwrap();
    let sim = AsteriskSim::start(sim_config(dir.path())).await;
    let url = sim.url();
    add_user(dir.path(), &url, "hal", "Hal").await;
    add_user(dir.path(), &url, "ida", "Ida").await;
    ok(&hub(dir.path(), &url, &["pbx", "apply"]).await);

    // An override template with a value Asterisk rejects for one user (as in fixture 05e):
    // the reload still says "Module Reloaded", and only verification can tell.
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    let builtin = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../asterisk-conf-templates/pjsip-user.hbs"),
    )
    .unwrap();
    let broken = builtin.replacen(
        "type=endpoint",
        "type=endpoint\n{{#if (eq extension \"1000\")}}dtmf_mode=not_a_mode\n{{/if}}",
        1,
    );
    assert_ne!(broken, builtin, "the built-in user template has an endpoint section");
    std::fs::write(templates.join("pjsip-user.hbs"), broken).unwrap();
    let templates_env = templates.display().to_string();
    let with_override = |args: &'static [&'static str]| {
        let (dir, url, templates) = (dir.path().to_path_buf(), url.clone(), templates_env.clone());
        tokio::task::spawn_blocking(move || {
            run(
                &dir,
                args,
                &[("HUB_PBX__AMI_URL", &url), ("HUB_PBX__AMI_AUTH", "md5"), ("HUB_PBX__TEMPLATES_DIR", &templates)],
            )
        })
    };
    let out = with_override(&["pbx", "apply", "--json"]).await.unwrap();
    let report = json(&out);
    assert_eq!(out.status.code(), Some(1), "a failed endpoint fails the command: {report}");
    let (hal, _) = endpoint_of(dir.path(), "hal").await;
    let (ida, _) = endpoint_of(dir.path(), "ida").await;
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0][0], hal.as_str());
    assert!(failed[0][1].as_str().unwrap().contains("has no endpoint"), "{report}");
    assert_eq!(report["provisioned"], serde_json::json!([ida]), "{report}");
    assert!(sim.rejected().iter().any(|r| r.contains("dtmf_mode")), "{:?}", sim.rejected());

    let status = json(&hub(dir.path(), &url, &["pbx", "status", "--json"]).await);
    assert_eq!(status["failed"][0][0], hal.as_str(), "{status}");
    assert_eq!(status["last_reload"]["ok"], false, "{status}");
    let records = store(dir.path()).await.provision_records().await.unwrap();
    let hal_record = records.iter().find(|r| r.endpoint == hal).unwrap();
    assert_eq!(hal_record.status, ProvisionStatus::Failed);

    // The same broken config is not reloaded again and again; `reload` retries it.
    let reloads = sim.reloads().len();
    let again = with_override(&["pbx", "apply"]).await.unwrap();
    assert!(text(&again).0.contains("1 endpoint(s) still failed"), "{:?}", text(&again));
    assert_eq!(sim.reloads().len(), reloads, "no reload for an unchanged failure");
    let retried = with_override(&["pbx", "reload", "--json"]).await.unwrap();
    assert_eq!(sim.reloads().len(), reloads + 2, "{:?}", text(&retried));
    assert_eq!(json(&retried)["failed"][0][0], hal.as_str());
    // Without the broken override, the next apply fixes it.
    let fixed = json(&hub(dir.path(), &url, &["pbx", "apply", "--json"]).await);
    assert!(fixed["provisioned"].as_array().unwrap().iter().any(|e| e == hal.as_str()), "{fixed}");
    assert!(fixed["failed"].as_array().unwrap().is_empty(), "{fixed}");
}

#[tokio::test]
async fn a_thousand_users_changed_at_once_take_one_reload() {
    let dir = tempfile::tempdir().unwrap();
    let sim = AsteriskSim::start(sim_config(dir.path())).await;
    let url = sim.url();
    {
        let s = store(dir.path()).await;
        for i in 0..1000 {
            let new = NewUser {
                username: format!("user{i:04}"),
                display_name: format!("User {i}"),
                extension: Some(hub::model::Extension::new(format!("{}", 2000 + i)).unwrap()),
                ..Default::default()
            };
            s.create_user(new).await.unwrap();
        }
        hub::store::Store::close(&s).await;
    }
    let out = hub(dir.path(), &url, &["pbx", "apply", "--json"]).await;
    let report = json(&out);
    assert_eq!(report["provisioned"].as_array().unwrap().len(), 1000, "{}", report["failed"]);
    assert_eq!(sim.reloads(), ["res_pjsip.so", "pbx_config.so"]);
    assert_eq!(sim.endpoints().len(), 1001, "1000 users and the hub's trunk");
}

#[tokio::test]
async fn init_prints_the_include_lines_asterisk_needs() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc-asterisk");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("pjsip.conf"), "[transport-ws]\ntype=transport\nprotocol=ws\n").unwrap();
    std::fs::write(etc.join("extensions.conf"), "[general]\n").unwrap();
    let etc_s = etc.display().to_string();
    let out = run(dir.path(), &["pbx", "init", "--asterisk-dir", &etc_s], &[]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("#include")).collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[1].ends_with("hub-pjsip-users.conf\""), "{stdout}");
    // Adding exactly the printed lines satisfies it.
    let mut pjsip = std::fs::read_to_string(etc.join("pjsip.conf")).unwrap();
    pjsip.push_str(&format!("{}\n{}\n", lines[0], lines[1]));
    std::fs::write(etc.join("pjsip.conf"), pjsip).unwrap();
    std::fs::write(etc.join("extensions.conf"), format!("[general]\n{}\n", lines[2])).unwrap();
    let out = run(dir.path(), &["pbx", "init", "--asterisk-dir", &etc_s], &[]);
    let (stdout, _) = text(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("pjsip.conf: includes the hub's files"), "{stdout}");
}

#[tokio::test]
async fn originate_rings_a_user_then_dials() {
    let dir = tempfile::tempdir().unwrap();
    let sim = AsteriskSim::start(sim_config(dir.path())).await;
    let url = sim.url();
    add_user(dir.path(), &url, "jo", "Jo").await;
    ok(&hub(dir.path(), &url, &["pbx", "apply"]).await);
    let (jo, _) = endpoint_of(dir.path(), "jo").await;

    let out = hub(dir.path(), &url, &["pbx", "originate", "jo", "800", "--timeout", "5"]).await;
    assert_eq!(out.status.code(), Some(1), "not registered: {:?}", text(&out));
    assert!(text(&out).0.contains("failed"), "{:?}", text(&out));
    sim.register(&jo);
    let result = json(&hub(dir.path(), &url, &["pbx", "originate", "jo", "800", "--json"]).await);
    assert_eq!(result["answered"], true, "{result}");
    assert_eq!(result["channel"], format!("PJSIP/{jo}"));
}

// Multi-threaded: the simulated Asterisk must keep answering while the test thread blocks
// on the hub's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asterisk_down_then_back_and_a_hub_restart_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = AsteriskSim::start(sim_config(dir.path())).await;
    let url = sim.url();
    sim.stop();
    let env_owned = [
        ("HUB_PBX__AMI_URL", url.clone()),
        ("HUB_PBX__AMI_AUTH", "md5".to_string()),
        ("HUB_PBX__RETRY_MAX", "300ms".to_string()),
        ("HUB_PBX__COALESCE_QUIET", "50ms".to_string()),
    ];
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // A first sign-in while Asterisk is down: the change is written and left pending.
    let hub1 = Hub::start(dir.path(), &[], &env);
    let b = browser(&hub1);
    let res = b
        .post(hub1.url("/auth/demo"))
        .header("origin", hub1.url(""))
        .form(&[("name", "Kim Lee")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    hub1.wait_for_event("Asterisk unreachable; changes stay pending", "pending", "1");
    let res = b.get(hub1.url("/api/me/sip")).send().await.unwrap();
    assert_eq!(res.status(), 200, "the account exists before Asterisk has it");
    drop(hub1.stop("TERM"));
    let records = store(dir.path()).await.provision_records().await.unwrap();
    assert_eq!(records.len(), 1);
    assert!(records[0].is_pending() && records[0].detail.contains("unreachable"), "{records:?}");

    // A restarted hub still has it pending; Asterisk comes back and gets it without any new change.
    let hub2 = Hub::start(dir.path(), &[], &env);
    hub2.wait_for_event("Asterisk unreachable; changes stay pending", "pending", "1");
    let sim = sim.restart().await;
    let line = hub2.wait_for_event("provisioning applied", "provisioned", "1");
    assert!(line.contains("\"failed\":0"), "{line}");
    let b = browser(&hub2);
    let res = b
        .post(hub2.url("/auth/demo"))
        .header("origin", hub2.url(""))
        .form(&[("name", "Kim Lee")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let res = b.get(hub2.url("/api/me/sip")).send().await.unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let sip: Value = res.json().await.unwrap();
    let endpoint = sip["username"].as_str().unwrap().to_string();
    let ep = sim.object("endpoint", &endpoint).expect("provisioned after Asterisk came back");
    assert_eq!(sim.object("auth", &ep.options["auth"]).unwrap().options["password"], sip["secret"].as_str().unwrap());
    assert_eq!(sip["extension"], "1000");
    assert_eq!(sip["realm"], "asterisk");
    assert_eq!(sip["wss_url"], "wss://127.0.0.1:8089/ws");
    assert!(sip["uri"].as_str().unwrap().starts_with(&format!("sip:{endpoint}@127.0.0.1")));
    let secret = sip["secret"].as_str().unwrap().to_string();
    let (_, _, log) = hub2.stop("TERM");
    assert!(!log.join("\n").contains(&secret), "a SIP secret reached the log");
    let _ = WAIT;
}

/// The same flow against a real Asterisk, when one is configured: `HUB_TEST_AMI_URL` and
/// `HUB_TEST_ASTERISK_INCLUDE_DIR` (a directory whose `hub-*.conf` files that Asterisk's
/// `pjsip.conf` and `extensions.conf` `#include`, see `hub pbx init`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_against_a_real_asterisk_when_configured() {
    let (Ok(url), Ok(include_dir)) =
        (std::env::var("HUB_TEST_AMI_URL"), std::env::var("HUB_TEST_ASTERISK_INCLUDE_DIR"))
    else {
        println!(
            "real Asterisk provisioning test SKIPPED: HUB_TEST_AMI_URL and HUB_TEST_ASTERISK_INCLUDE_DIR are not both set \
             (only the simulated Asterisk manager was used)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = [("HUB_PBX__AMI_URL", url.as_str()), ("HUB_PBX__CONFIG_DIR", include_dir.as_str())];
    let hub_env = |args: &[&str]| run(dir.path(), args, &env);
    for (user, ext) in [("realtest-a", "1991"), ("realtest-b", "1992")] {
        ok(&run(dir.path(), &["users", "add", "--username", user, "--name", user, "--extension", ext], &[]));
    }
    let out = hub_env(&["pbx", "apply", "--json"]);
    let report = json(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(report["provisioned"].as_array().unwrap().len(), 2, "{report}");
    let endpoints = json(&hub_env(&["pbx", "endpoints", "--json"]));
    let (a, _) = endpoint_of(dir.path(), "realtest-a").await;
    assert!(endpoints.as_array().unwrap().iter().any(|e| e["name"] == a.as_str()), "{endpoints}");
    let out = hub_env(&["users", "disable", "realtest-a"]);
    assert!(text(&out).1.contains(&format!("asterisk: removed endpoint {a}")), "{:?}", text(&out));
    let status = json(&hub_env(&["pbx", "status", "--json"]));
    assert_eq!(status["reachable"], true, "{status}");
    println!("real Asterisk provisioning: {status}");
    // Leave the real Asterisk as it was.
    ok(&run(dir.path(), &["users", "disable", "realtest-b"], &[]));
    ok(&hub_env(&["pbx", "apply"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_shows_who_is_registered_on_asterisk() {
    let dir = tempfile::tempdir().unwrap();
    let sim = AsteriskSim::start(sim_config(dir.path())).await;
    let env_owned = [("HUB_PBX__AMI_URL", sim.url()), ("HUB_PBX__COALESCE_QUIET", "20ms".to_string())];
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let hub = Hub::start(dir.path(), &[], &env);
    let ann = browser(&hub);
    let ben = browser(&hub);
    for (b, name) in [(&ann, "Ann Lee"), (&ben, "Ben Ray")] {
        let res =
            b.post(hub.url("/auth/demo")).header("origin", hub.url("")).form(&[("name", name)]).send().await.unwrap();
        assert_eq!(res.status(), 303);
    }
    // Ben's endpoint exists on Asterisk once his /api/me/sip answers and the sim has it.
    let deadline = std::time::Instant::now() + WAIT;
    let endpoint = loop {
        let res = ben.get(hub.url("/api/me/sip")).send().await.unwrap();
        if res.status() == 200 {
            let sip: Value = res.json().await.unwrap();
            let endpoint = sip["username"].as_str().unwrap().to_string();
            if sim.object("endpoint", &endpoint).is_some() {
                break endpoint;
            }
        }
        assert!(std::time::Instant::now() < deadline, "Ben was never provisioned\n{}", hub.log().join("\n"));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let ben_in_directory = || async {
        let v: Value = ann.get(hub.url("/api/directory?q=ben")).send().await.unwrap().json().await.unwrap();
        v["users"][0].clone()
    };
    let before = ben_in_directory().await;
    assert_eq!(before["sip"]["registered"], 0, "{before}");

    // A desk phone registers as Ben: Asterisk's events reach the directory.
    sim.register_contact(&endpoint, "sip:ben@127.0.0.1:5999;transport=WS;x-ast-orig-host=abc.invalid:0");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = ben_in_directory().await;
        if now["sip"]["registered"] == 1 {
            assert_eq!(now["sip"]["in_use"], false, "{now}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no registration seen: {now}\n{}", hub.log().join("\n"));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn apply_and_status_say_plainly_when_asterisk_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let sim = AsteriskSim::start(sim_config(dir.path())).await;
    let url = sim.url();
    sim.stop();
    add_user(dir.path(), &url, "lou", "Lou").await;
    let out = hub(dir.path(), &url, &["pbx", "apply"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 change(s) pending: Asterisk unreachable"), "{stdout}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one clear line: {stderr}");
    assert!(errors[0].contains("cannot connect to the Asterisk manager"), "{stderr}");

    let out = hub(dir.path(), &url, &["pbx", "status", "--json"]).await;
    assert_eq!(out.status.code(), Some(3));
    let status = json(&out);
    assert_eq!((status["reachable"].as_bool(), status["pending"].as_u64()), (Some(false), Some(1)), "{status}");
    let out = hub(dir.path(), &url, &["pbx", "status"]).await;
    assert!(text(&out).0.contains("UNREACHABLE"), "{:?}", text(&out));
}
