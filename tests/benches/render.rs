//! Benchmark: rendering and writing the Asterisk config for 10,000 users (what every
//! provisioning run does when a user or a template changes).
//!
//! Run: `cargo bench -p hub-tests --bench render`. Each of 20 iterations renders the three
//! files, writes them into a fresh directory (first write), and writes the same render again
//! (unchanged: compared and skipped). Target: render + first write under 250 ms.

mod report;

use std::time::{Duration, Instant};

use hub::model::{Extension, Secret, UserId};
use hub::pbx::{DialplanPlan, EndpointSettings, PbxPlan, PlannedUser, Templates, TrunkPlan};

const USERS: usize = 10_000;
const ITERATIONS: usize = 20;
const TARGET: Duration = Duration::from_millis(250);

fn plan() -> PbxPlan {
    let users = (0..USERS)
        .map(|i| PlannedUser {
            user_id: UserId::generate(),
            username: format!("user.{i}"),
            display_name: format!("Benutzerin Nummer {i} Müller-Lüdenscheidt"),
            extension: Extension::new(format!("{}", 10_000 + i)).unwrap(),
            sip_username: format!("u{i}-7f3a9c"),
            secret: Secret::new(format!("{i:08}-c2VjcmV0LXNlY3JldC1zZWNyZXQ")),
        })
        .collect();
    PbxPlan {
        users,
        trunk: TrunkPlan::new("hub", Secret::new("trunk-secret")),
        dialplan: DialplanPlan {
            ivr_numbers: vec!["800".into(), "801".into()],
            outbound_trunk: Some("pstn".into()),
            outbound_patterns: vec!["_0[1-9]XXXXXXXX".into(), "_00X.".into()],
            ..Default::default()
        },
        settings: EndpointSettings { transport: Some("transport-wss".into()), ..Default::default() },
    }
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("Asterisk config render + write, {USERS} users, {ITERATIONS} iterations, {cores} cores");
    let templates = Templates::builtin();
    let plan = plan();
    let tmp = tempfile::tempdir().unwrap();

    let (mut render, mut first, mut again, mut total) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for i in 0..ITERATIONS {
        let dir = tmp.path().join(format!("run-{i}"));
        let t0 = Instant::now();
        let rendered = hub::pbx::render(&templates, &plan).unwrap();
        let t1 = Instant::now();
        let changed = hub::pbx::write(&dir, &rendered).unwrap();
        let t2 = Instant::now();
        assert_eq!(changed.len(), 3, "a fresh directory gets every file");
        let unchanged = hub::pbx::write(&dir, &rendered).unwrap();
        let t3 = Instant::now();
        assert!(unchanged.is_empty(), "an unchanged render writes nothing");
        assert_eq!(rendered.revisions.len(), USERS);
        bytes = rendered.files.iter().map(|f| f.contents.len()).sum::<usize>();
        render.push(t1 - t0);
        first.push(t2 - t1);
        again.push(t3 - t2);
        total.push(t2 - t0);
    }
    println!("  files: {:.1} MB in total", bytes as f64 / 1e6);
    report::millis("render", &mut render);
    report::millis("write (first)", &mut first);
    report::millis("write (unchanged)", &mut again);
    report::millis("render + first write", &mut total);
    let p50 = total[total.len() / 2];
    println!(
        "  target: render + write under {} ms: {}",
        TARGET.as_millis(),
        if p50 < TARGET { "met" } else { "MISSED" }
    );
}
