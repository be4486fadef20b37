//! `hub ivr check|simulate|test` as a script author uses them, on the shipped scripts.

use std::path::{Path, PathBuf};

use crate::common::{run, text};

/// The repository's `ivr-scripts/`.
fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ivr-scripts").canonicalize().unwrap()
}

fn with_scripts(dir: &Path, args: &[&str]) -> std::process::Output {
    let scripts = scripts_dir();
    run(dir, args, &[("HUB_IVR__SCRIPTS_DIR", scripts.to_str().unwrap())])
}

#[test]
fn check_reports_file_line_column_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.rhai");
    std::fs::write(&broken, "answer();\nlet x = ;\n").unwrap();
    let out = run(dir.path(), &["ivr", "check", broken.to_str().unwrap()], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains(&format!("{}:2:9: ", broken.display())), "{stdout}");

    let out = with_scripts(dir.path(), &["ivr", "check"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "the shipped scripts compile: {stdout}{stderr}");
    assert!(stdout.contains("0 failed"), "{stdout}");
}

#[test]
fn simulate_prints_the_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let script = scripts_dir().join("main_menu.rhai");
    let out = run(dir.path(), &["ivr", "simulate", script.to_str().unwrap(), "--digits", "9 _ 0"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let expected = [
        "* answer",
        "> say \"For the directory, press 1. To leave a message, press 2. For the operator, press 0.\"",
        "< caller presses 9",
        "> say \"That is not a valid choice.\"",
        "> say \"For the directory, press 1. To leave a message, press 2. For the operator, press 0.\"",
        "< (no input, timeout 5000 ms)",
        "> say \"Sorry, I did not hear a choice.\"",
        "> say \"For the directory, press 1. To leave a message, press 2. For the operator, press 0.\"",
        "< caller presses 0",
        "* transfer 1000",
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{stderr}");
}

#[test]
fn shipped_tests_pass_and_a_changed_expectation_fails_with_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let out = with_scripts(dir.path(), &["ivr", "test"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("ok    ") && stdout.contains(" 0 failed"), "{stdout}");

    let original = std::fs::read_to_string(scripts_dir().join("tests/main_menu.toml")).unwrap();
    assert!(original.contains("\"* transfer 1000\""));
    let changed = dir.path().join("changed.toml");
    std::fs::write(&changed, original.replace("\"* transfer 1000\"", "\"* transfer 1999\"")).unwrap();
    let out = with_scripts(dir.path(), &["ivr", "test", changed.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("FAIL  "), "{stdout}");
    assert!(stdout.contains("--- expected") && stdout.contains("+++ actual"), "{stdout}");
    assert!(stdout.contains("-* transfer 1999") && stdout.contains("+* transfer 1000"), "{stdout}");
}
