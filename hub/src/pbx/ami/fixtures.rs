//! The real Asterisk 22 transcripts in `shared/fixtures/ami`, for unit tests of everything
//! that reads AMI (the decoder, presence): one loader, so every test reads them the same way.

use std::path::PathBuf;

use super::frame::{Decoder, Message};

/// The fixture directory (`HUB_AMI_FIXTURES` overrides it).
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("HUB_AMI_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/ami"));
    assert!(dir.is_dir(), "AMI fixtures not found at {} (set HUB_AMI_FIXTURES)", dir.display());
    dir
}

/// Every fixture name (`NN-name`), sorted.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".server").map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The server's messages of a fixture, decoded from the whole stream.
pub fn server(name: &str) -> Vec<Message> {
    let bytes = std::fs::read(fixtures().join(format!("{name}.server"))).unwrap();
    let mut d = Decoder::server();
    d.feed(&bytes);
    let mut msgs = Vec::new();
    while let Some(m) = d.next_message().expect("valid AMI") {
        msgs.push(m);
    }
    assert_eq!(d.greeting(), Some("Asterisk Call Manager/11.0.0"), "{name}");
    assert_eq!(d.pending(), 0, "{name}: bytes left over");
    msgs
}
