//! The command line as a sysadmin uses it: help, version and the user directory.

use crate::common::{run, text};

#[test]
fn help_lists_every_command_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--help"], &[]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    for (cmd, words) in [
        ("serve", "Run the hub"),
        ("config", "Show or validate"),
        ("users", "Manage the user directory"),
        ("version", "Print the hub's version"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(cmd))
            .unwrap_or_else(|| panic!("{cmd} missing:\n{stdout}"));
        assert!(line.contains(words), "{line}");
    }
    let out = run(dir.path(), &["users", "--help"], &[]);
    let (stdout, _) = text(&out);
    for cmd in ["list", "show", "add", "disable", "enable"] {
        assert!(stdout.lines().any(|l| l.trim_start().starts_with(cmd)), "{cmd} missing:\n{stdout}");
    }
}

#[test]
fn version_for_people_and_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, _) = text(&run(dir.path(), &["version"], &[]));
    assert!(stdout.starts_with("hub 0."), "{stdout}");
    let (stdout, _) = text(&run(dir.path(), &["version", "--json"], &[]));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["version"].as_str().unwrap().starts_with("0."));
}

fn json(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = run(dir, args, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
}

#[test]
fn users_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run(d, &["users", "list"], &[]);
    assert_eq!(text(&out).0.trim(), "no users");

    let out = run(
        d,
        &[
            "users",
            "add",
            "--username",
            "alice",
            "--name",
            "Alice Liddell",
            "--email",
            "alice@example.org",
            "--number",
            "+49 30 1234:mobile",
            "--admin",
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("created alice (Alice Liddell), extension 1000, id "), "{stdout}");
    let bob = json(d, &["users", "add", "--username", "bob", "--name", "Bob Builder", "--extension", "1500", "--json"]);
    assert_eq!(bob["extension"], "1500");
    let carol = json(d, &["users", "add", "--username", "carol", "--name", "Carol Smith", "--json"]);
    assert_eq!(carol["extension"], "1001", "next free extension of the range");

    let list = json(d, &["users", "list", "--json"]);
    let names: Vec<_> = list.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    let (table, _) = text(&run(d, &["users", "list"], &[]));
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("USERNAME  NAME"), "{table}");
    assert!(table.contains("alice     Alice Liddell  1000  +49301234"), "{table}");
    assert!(table.contains("active, admin"), "{table}");

    let found = json(d, &["users", "list", "--search", "smi", "--json"]);
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["username"], "carol");

    let shown = json(d, &["users", "show", "1500", "--json"]);
    assert_eq!(shown["username"], "bob");
    assert_eq!(shown["sessions"], 0);
    let (details, _) = text(&run(d, &["users", "show", "alice"], &[]));
    assert!(details.contains("numbers     +49301234  mobile (admin)"), "{details}");
    assert!(details.contains("email       alice@example.org"), "{details}");

    let (stdout, _) = text(&run(d, &["users", "disable", "bob"], &[]));
    assert_eq!(stdout.trim(), "disabled bob; ended 0 session(s)");
    let names: Vec<_> = json(d, &["users", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["alice", "carol"], "disabled users are hidden by default");
    let all = json(d, &["users", "list", "--all", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(json(d, &["users", "show", "bob", "--json"])["disabled"], true);
    let enabled = json(d, &["users", "enable", "bob", "--json"]);
    assert_eq!(enabled["disabled"], false);
}

#[test]
fn user_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(run(d, &["users", "add", "--username", "a", "--name", "A", "--extension", "1200"], &[]).status.success());

    let out = run(d, &["users", "add", "--username", "b", "--name", "B", "--extension", "1200"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out).1.trim(), "error: extension \"1200\" is already taken");

    let out = run(d, &["users", "add", "--username", "a", "--name", "Again"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out).1.trim(), "error: username \"a\" is already taken");

    let out = run(d, &["users", "show", "nobody"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out).1.trim(), "error: no user \"nobody\" (looked up by username, extension and id)");

    let out = run(d, &["users", "add", "--username", "bad name", "--name", "X"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.starts_with("error: username: "), "{}", text(&out).1);

    let out = run(
        d,
        &["users", "add", "--username", "x", "--name", "X", "--extension", "1000"],
        &[("HUB_PBX__EXTENSION_RANGE", "1000-1000")],
    );
    assert!(out.status.success());
    let out = run(d, &["users", "add", "--username", "y", "--name", "Y"], &[("HUB_PBX__EXTENSION_RANGE", "1000-1000")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("no free extension left in pbx.extension_range 1000-1000"), "{}", text(&out).1);
}
