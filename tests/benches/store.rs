//! Benchmark: the SQLite store with 10,000 users: insert rate, and name-prefix search
//! latency (what the directory search box does on every keystroke).
//!
//! Run: `cargo bench -p hub-tests --bench store`.

mod report;

use std::sync::Arc;
use std::time::Instant;

use hub::model::{NewUser, Number, NumberKind, NumberSource};
use hub::store::{SqliteStore, Store, UserQuery};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const USERS: usize = 10_000;
const SEARCHES: usize = 5_000;

const FIRST: &[&str] = &[
    "Anna", "Ben", "Clara", "David", "Elif", "Finn", "Greta", "Hugo", "Ida", "Jonas", "Kim", "Lea", "Mats", "Nora",
    "Omar", "Paula", "Quentin", "Rosa", "Sami", "Tara", "Uwe", "Vera", "Wim", "Xenia", "Yusuf", "Zoe",
];
const LAST: &[&str] = &[
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Schmitt",
    "Werner",
    "Krause",
    "Meier",
    "Lehmann",
    "Smith",
    "Garcia",
    "Nguyen",
    "Kowalski",
];

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(run());
}

fn user(i: usize, rng: &mut StdRng) -> NewUser {
    let first = FIRST[rng.random_range(0..FIRST.len())];
    let last = LAST[rng.random_range(0..LAST.len())];
    NewUser {
        subject: Some(format!("sub-{i}")),
        username: format!("{}.{}{i}", first.to_lowercase(), last.to_lowercase()),
        display_name: format!("{first} {last}"),
        email: Some(format!("{}.{}{i}@example.org", first.to_lowercase(), last.to_lowercase())),
        extension: Some(hub::model::Extension::new(format!("{}", 10_000 + i)).unwrap()),
        admin: false,
        numbers: vec![Number { number: format!("+4930{i:07}"), kind: NumberKind::Work, source: NumberSource::Idp }],
    }
}

async fn run() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("SQLite store benchmark, {USERS} users, {cores} cores");
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("bench.db"), 8).await.unwrap());
    let mut rng = StdRng::seed_from_u64(4475);

    let users: Vec<NewUser> = (0..USERS).map(|i| user(i, &mut rng)).collect();
    let half = USERS / 2;
    let start = Instant::now();
    for u in &users[..half] {
        store.create_user(u.clone()).await.unwrap();
    }
    let sequential = start.elapsed();
    println!(
        "  insert, one writer:     {half} users in {:.2} s = {:.0} inserts/s",
        sequential.as_secs_f64(),
        half as f64 / sequential.as_secs_f64()
    );
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in users[half..].chunks(half.div_ceil(8)) {
        let (store, chunk) = (store.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for u in chunk {
                store.create_user(u).await.unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let parallel = start.elapsed();
    println!(
        "  insert, 8 writers:      {} users in {:.2} s = {:.0} inserts/s",
        USERS - half,
        parallel.as_secs_f64(),
        (USERS - half) as f64 / parallel.as_secs_f64()
    );
    assert_eq!(store.count_users().await.unwrap(), USERS as u64);

    let mut samples = Vec::with_capacity(SEARCHES);
    let mut found = 0usize;
    for _ in 0..SEARCHES {
        let source = if rng.random_bool(0.5) { FIRST } else { LAST };
        let word = source[rng.random_range(0..source.len())].to_lowercase();
        let len = rng.random_range(1..=word.chars().count().min(4));
        let prefix: String = word.chars().take(len).collect();
        let q = UserQuery { name_prefix: Some(prefix), include_disabled: false, limit: Some(20) };
        let t = Instant::now();
        found += store.list_users(&q).await.unwrap().len();
        samples.push(t.elapsed());
    }
    let label =
        format!("name-prefix search (limit 20, 1-4 letters, {:.1} results avg)", found as f64 / SEARCHES as f64);
    report::latency(&label, &mut samples);
    store.close().await;
}
