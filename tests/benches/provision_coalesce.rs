//! Benchmark: 1,000 provisioning changes arriving within one second (users created through
//! the directory, as sign-ins would) against the *simulated* Asterisk manager: how many AMI
//! reloads they cost (target: at most 2), and how long until every user is verified.
//!
//! Run: `cargo bench -p hub-tests --bench provision_coalesce`.

#[path = "../e2e/common/ami_sim.rs"]
#[allow(dead_code, reason = "the bench uses part of the test peer")]
mod ami_sim;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hub::config::Config;
use hub::directory::{Actor, Directory};
use hub::model::{NewUser, ProvisionStatus};
use hub::pbx::provision::{ProvisionSettings, Provisioner};
use hub::pbx::provision_loop::{LoopTiming, ProvisionLoop};
use hub::store::{SqliteStore, Store};

const CHANGES: usize = 1_000;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("hub.db"), 4).await.unwrap());
    let config_dir = dir.path().join("asterisk");
    let sim = ami_sim::AsteriskSim::start(ami_sim::SimConfig::for_dir(&config_dir)).await;
    let mut config = Config::default();
    config.store.data_dir = dir.path().to_path_buf();
    config.pbx.config_dir = Some(config_dir);
    config.pbx.ami_url = Some(hub::config::ConnectionUrl::new(sim.url()));
    let provisioner = Provisioner::new(store.clone(), ProvisionSettings::from_config(&config).unwrap()).unwrap();
    let directory = Directory::new(store.clone(), config.pbx.extension_range);
    let timing = LoopTiming {
        quiet: config.pbx.coalesce_quiet,
        max_wait: config.pbx.coalesce_max,
        resync: Duration::from_secs(3600),
        retry_min: Duration::from_millis(200),
        retry_max: Duration::from_secs(1),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let (handle, task) = ProvisionLoop::spawn(provisioner, directory.subscribe(), None, timing, stop.clone());
    // The start-up pass (nothing to do) first.
    let mut passes = handle.passes();
    passes.wait_for(|n| *n >= 1).await.unwrap();
    let reloads_before = sim.reloads().len();

    println!("provisioning coalescing: {CHANGES} users created within 1 s through the directory");
    let started = Instant::now();
    let actor = Actor::cli();
    for i in 0..CHANGES {
        let due = started + Duration::from_secs_f64(i as f64 / CHANGES as f64);
        tokio::time::sleep_until(due.into()).await;
        let new = NewUser {
            username: format!("user{i:04}"),
            display_name: format!("User {i}"),
            extension: Some(hub::model::Extension::new(format!("{}", 3000 + i)).unwrap()),
            ..Default::default()
        };
        directory.create(new, &actor).await.unwrap();
    }
    let arrived = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = store.provision_records().await.unwrap();
        let done = records.iter().filter(|r| r.status == ProvisionStatus::Provisioned && !r.is_pending()).count();
        if done == CHANGES {
            break;
        }
        assert!(Instant::now() < deadline, "only {done} of {CHANGES} provisioned after 60 s");
        let _ = tokio::time::timeout(Duration::from_millis(100), passes.changed()).await;
    }
    let total = started.elapsed();
    let reloads = (sim.reloads().len() - reloads_before) / 2;
    println!("  changes arrived over {:.0} ms", arrived.as_secs_f64() * 1e3);
    println!("  AMI reloads (res_pjsip.so + pbx_config.so): {reloads}  (target: at most 2)");
    println!(
        "  all {CHANGES} verified on the simulated Asterisk {:.0} ms after the first change",
        total.as_secs_f64() * 1e3
    );
    println!("  cores: {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    stop.cancel();
    let _ = task.await;
    assert!(reloads <= 2, "{reloads} reloads for {CHANGES} changes");

    // One pass that provisions 9,000 more users at once (10,000 in all): how long the
    // PJSIPShowEndpoint verification takes when everybody changed.
    for i in CHANGES..10_000 {
        let new = NewUser {
            username: format!("user{i:05}"),
            display_name: format!("User {i}"),
            extension: Some(hub::model::Extension::new(format!("{}", 20_000 + i)).unwrap()),
            ..Default::default()
        };
        store.create_user(new).await.unwrap();
    }
    let provisioner = Provisioner::new(store.clone(), ProvisionSettings::from_config(&config).unwrap()).unwrap();
    let started = Instant::now();
    let report =
        provisioner.run(&hub::pbx::provision::PassOptions::default(), &hub::pbx::provision::Quiet).await.unwrap();
    println!(
        "  one pass for 9,000 new users (10,000 in all): {:.0} ms ({} provisioned, {} failed)",
        started.elapsed().as_secs_f64() * 1e3,
        report.provisioned.len(),
        report.failed.len()
    );
    assert_eq!(report.provisioned.len(), 9_000);
}
