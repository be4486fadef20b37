//! Rendering, writing and diffing, with hostile values: snapshots of every file, a small
//! Asterisk config structure parser to prove that no value changes a file's structure, and
//! the atomic, change-only writes.

use super::*;
use crate::model::{Extension, Secret};
use crate::pbx::conf_value;
use crate::pbx::plan::{DialplanPlan, EndpointSettings, PlannedUser, TrunkPlan};

fn user(n: u32, display_name: &str) -> PlannedUser {
    PlannedUser {
        user_id: UserId::from_string(format!("0190a000-0000-7000-8000-00000000000{n}")),
        username: format!("user{n}"),
        display_name: display_name.to_string(),
        extension: Extension::new(format!("{}", 1000 + n)).unwrap(),
        sip_username: format!("u{n}-k3q9"),
        secret: Secret::new(format!("fixed-secret-{n}-Zm9vYmFy")),
    }
}

fn plan(users: Vec<PlannedUser>) -> PbxPlan {
    PbxPlan {
        users,
        trunk: TrunkPlan::new("hub-ua", Secret::new("fixed-trunk-secret-QmFy")),
        dialplan: DialplanPlan {
            ivr_numbers: vec!["800".into(), "*97".into()],
            outbound_trunk: Some("pstn".into()),
            outbound_patterns: vec!["_0[1-9]XXXXXXXX".into(), "_00X.".into(), "_+49X!".into()],
            ..Default::default()
        },
        settings: EndpointSettings::default(),
    }
}

/// A change to a valid plan that a test expects `render` to refuse.
type Mutation = fn(&mut PbxPlan);

fn render_builtin(plan: &PbxPlan) -> RenderedConfig {
    render(&Templates::builtin(), plan).unwrap()
}

fn contents<'a>(r: &'a RenderedConfig, name: &str) -> &'a str {
    &r.file(name).unwrap().contents
}

const HOSTILE: &[&str] = &[
    "Evil\n[evil]\ntype=endpoint",
    "semi;colon",
    "a=b",
    "#include /etc/passwd",
    "\n#include /etc/passwd\n#exec /bin/sh -c id",
    "quote\" <9999>",
    "back\\slash\\",
    "nul\0byte",
    "\r\n;--block comment\r\n",
    "${SHELL(id)}",
    "tab\there, comma",
    "[",
    "]\n[hub-local]\nexten => _X.,1,Dial(PJSIP/${EXTEN}@pstn)",
];

// ---- a small parser for the structure of an Asterisk config file -------------------------

/// One structural element of a config file, as Asterisk's `config.c` would see it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Item {
    /// `[name]` (with optional `(template flags)` after it).
    Section(String),
    /// `key=value` or `key => value` inside the current section: (section, key).
    Key(String, String),
    /// A line starting with `#`: `#include`, `#tryinclude`, `#exec`.
    Directive(String),
    /// The start of a `;-- … --;` block comment.
    BlockComment,
    /// A line that is none of the above (Asterisk logs an error and may stop parsing).
    Garbage(String),
}

/// The line with its comment removed: the first `;` not preceded by `\` starts a comment.
fn strip_comment(line: &str) -> (&str, bool) {
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b';' && (i == 0 || bytes[i - 1] != b'\\') {
            let block = line[i..].starts_with(";--");
            return (&line[..i], block);
        }
    }
    (line, false)
}

fn structure(text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut section = String::new();
    for raw in text.split('\n') {
        assert!(!raw.contains('\r') && !raw.contains('\0'), "control character in {raw:?}");
        let (line, block) = strip_comment(raw);
        if block {
            items.push(Item::BlockComment);
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            items.push(Item::Directive(line.to_string()));
        } else if let Some(rest) = line.strip_prefix('[') {
            let (name, _) = rest.split_once(']').unwrap_or((rest, ""));
            section = name.to_string();
            items.push(Item::Section(section.clone()));
        } else if let Some((key, _)) = line.split_once('=') {
            items.push(Item::Key(section.clone(), key.trim().trim_end_matches('>').trim().to_string()));
        } else {
            items.push(Item::Garbage(line.to_string()));
        }
    }
    items
}

/// `key=value` values in `section` (the first section of that name with the key).
fn values<'a>(text: &'a str, section: &str, key: &str) -> Vec<&'a str> {
    let mut current = "";
    let mut out = Vec::new();
    for line in text.lines() {
        let (line, _) = strip_comment(line);
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('[') {
            current = rest.split_once(']').map_or(rest, |(n, _)| n);
        } else if current == section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            out.push(v.trim_start_matches('>').trim());
        }
    }
    out
}

#[test]
fn the_structure_parser_sees_what_asterisk_sees() {
    let text = "; c\n[a](!)\ntype=endpoint ; note\nexten => 1,1,NoOp(x\\;y)\n#include x\n;-- b\nbad line\n";
    assert_eq!(
        structure(text),
        vec![
            Item::Section("a".into()),
            Item::Key("a".into(), "type".into()),
            Item::Key("a".into(), "exten".into()),
            Item::Directive("#include x".into()),
            Item::BlockComment,
            Item::Garbage("bad line".into()),
        ]
    );
    assert_eq!(values("[a]\nk=v ; c\n[b]\nk=w\n", "b", "k"), vec!["w"]);
}

// ---- hostile values ------------------------------------------------------------------------

#[test]
fn hostile_display_and_login_names_cannot_change_the_structure() {
    let plain = render_builtin(&plan(vec![user(1, "Anna Müller"), user(2, "王小明")]));
    for hostile in HOSTILE {
        let mut u1 = user(1, hostile);
        u1.username = (*hostile).to_string();
        let mut u2 = user(2, &format!("{hostile}{hostile}"));
        u2.username = format!("x{hostile}");
        u2.user_id = UserId::from_string(format!("id-{hostile}"));
        let evil = render_builtin(&plan(vec![u1, u2]));
        for name in [USERS_FILE, TRUNK_FILE, EXTENSIONS_FILE] {
            let (a, b) = (contents(&plain, name), contents(&evil, name));
            assert_eq!(structure(a), structure(b), "{name} with {hostile:?}:\n{b}");
            for line in b.lines() {
                let t = line.trim_start();
                assert!(!t.starts_with('#'), "directive line in {name} with {hostile:?}: {line:?}");
                assert!(!t.contains("#include") || t.starts_with(';'), "{line:?}");
            }
            assert!(!structure(b).iter().any(|i| matches!(i, Item::Garbage(_) | Item::BlockComment)));
        }
        // The caller ID stays one quoted name and one number.
        let users_conf = contents(&evil, USERS_FILE);
        for (endpoint, ext) in [("u1-k3q9", "1001"), ("u2-k3q9", "1002")] {
            let callerid = values(users_conf, endpoint, "callerid");
            assert_eq!(callerid.len(), 1, "{hostile:?}");
            let name = callerid[0].strip_prefix('"').and_then(|v| v.strip_suffix(&format!("\" <{ext}>"))).unwrap();
            assert!(!name.contains(['"', '<', '>', '\\', ';', '=', '[', ']', '#', ',', '$']), "{name:?}");
            assert!(name.chars().count() <= conf_value::FREE_TEXT_MAX_CHARS);
        }
    }
}

#[test]
fn unicode_names_stay_readable() {
    let r = render_builtin(&plan(vec![user(1, "Jürgen Müller-Lüdenscheidt"), user(2, "王小明")]));
    let users_conf = contents(&r, USERS_FILE);
    assert_eq!(values(users_conf, "u1-k3q9", "callerid"), vec!["\"Jürgen Müller-Lüdenscheidt\" <1001>"]);
    assert_eq!(values(users_conf, "u2-k3q9", "callerid"), vec!["\"王小明\" <1002>"]);
}

#[test]
fn hostile_identifiers_are_refused_naming_field_and_value() {
    let cases: Vec<(&str, Mutation)> = vec![
        ("users[0190a000-0000-7000-8000-000000000001].sip_username", |p| p.users[0].sip_username = "a\n[evil]".into()),
        ("users[0190a000-0000-7000-8000-000000000001].secret", |p| p.users[0].secret = Secret::new("")),
        ("users[0190a000-0000-7000-8000-000000000001].secret", |p| p.users[0].secret = Secret::new("x\ny")),
        ("trunk.endpoint", |p| p.trunk.endpoint = "hub;x".into()),
        ("trunk.username", |p| p.trunk.username = "hub ua".into()),
        ("trunk.password", |p| p.trunk.password = Secret::new("")),
        ("settings.context", |p| p.settings.context = "hub-users]\n[x".into()),
        ("settings.context", |p| p.settings.context = "hub-refuse".into()),
        ("settings.transport", |p| p.settings.transport = Some("transport-ws\n#exec x".into())),
        ("settings.media_address", |p| p.settings.media_address = Some("1.2.3.4;x".into())),
        ("dialplan.ivr_numbers", |p| p.dialplan.ivr_numbers.push("_X.".into())),
        ("dialplan.outbound_trunk", |p| p.dialplan.outbound_trunk = Some("pstn,x".into())),
        ("dialplan.outbound_patterns", |p| p.dialplan.outbound_patterns.push("_X.\n[x]".into())),
        ("dialplan.voicemail_prefix", |p| p.dialplan.voicemail_prefix = "${X}".into()),
    ];
    for (field, mutate) in cases {
        let mut p = plan(vec![user(1, "Anna")]);
        mutate(&mut p);
        let e = render(&Templates::builtin(), &p).unwrap_err();
        let RenderError::Invalid(v) = &e else { panic!("{field}: {e:?}") };
        assert_eq!(v.field, field);
        let text = e.to_string();
        assert!(text.contains(field), "{text}");
        if !field.ends_with("secret") && !field.ends_with("password") {
            assert!(text.contains(&format!("{:?}", v.value)), "names the value: {text}");
        }
    }
}

#[test]
fn a_secret_with_a_semicolon_is_escaped_not_a_comment() {
    let mut u = user(1, "Anna");
    u.secret = Secret::new("abc;def");
    let r = render_builtin(&plan(vec![u]));
    assert_eq!(values(contents(&r, USERS_FILE), "u1-k3q9-auth", "password"), vec!["abc\\;def"]);
}

#[test]
fn duplicates_are_refused() {
    let cases: Vec<(&str, Mutation)> = vec![
        ("endpoint name", |p| p.users[1].sip_username = p.users[0].sip_username.clone()),
        ("endpoint name", |p| p.users[1].sip_username = "hub".into()),
        ("endpoint name", |p| p.users[1].sip_username = "pstn".into()),
        ("extension or IVR number", |p| p.users[1].extension = p.users[0].extension.clone()),
        ("extension or IVR number", |p| p.dialplan.ivr_numbers.push("1001".into())),
        ("user id", |p| p.users[1].user_id = p.users[0].user_id.clone()),
        ("outbound pattern", |p| p.dialplan.outbound_patterns.push("_00X.".into())),
    ];
    for (what, mutate) in cases {
        let mut p = plan(vec![user(1, "A"), user(2, "B")]);
        mutate(&mut p);
        match render(&Templates::builtin(), &p) {
            Err(RenderError::Duplicate { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: {other:?}"),
        }
    }
}

// ---- snapshots -------------------------------------------------------------------------------

#[test]
fn snapshot_users() {
    let r = render_builtin(&plan(vec![
        user(1, "Anna Müller"),
        user(2, "Evil\n[evil]\ntype=endpoint;#include /etc/passwd \"x\" <9> \\ \0"),
        user(3, "王小明"),
    ]));
    insta::assert_snapshot!("users", contents(&r, USERS_FILE));
}

#[test]
fn snapshot_users_with_transport_and_media_address() {
    let mut p = plan(vec![user(1, "Anna Müller")]);
    p.settings.transport = Some("transport-wss".into());
    p.settings.media_address = Some("192.0.2.10".into());
    p.settings.max_contacts = 5;
    let r = render_builtin(&p);
    insta::assert_snapshot!("users_transport_media_address", contents(&r, USERS_FILE));
    insta::assert_snapshot!("trunk_media_address", contents(&r, TRUNK_FILE));
}

#[test]
fn snapshot_trunk() {
    let r = render_builtin(&plan(vec![user(1, "Anna")]));
    insta::assert_snapshot!("trunk", contents(&r, TRUNK_FILE));
}

#[test]
fn snapshot_dialplan() {
    let r = render_builtin(&plan(vec![user(1, "Anna Müller"), user(2, "Evil\n[x]"), user(3, "王小明")]));
    insta::assert_snapshot!("extensions", contents(&r, EXTENSIONS_FILE));
}

#[test]
fn snapshot_dialplan_without_outbound_trunk() {
    let mut p = plan(vec![user(1, "Anna")]);
    p.dialplan.outbound_trunk = None;
    p.dialplan.ivr_numbers.clear();
    let r = render_builtin(&p);
    insta::assert_snapshot!("extensions_no_outbound", contents(&r, EXTENSIONS_FILE));
}

#[test]
fn without_a_trunk_nothing_is_routed_out_and_the_refusal_stays_last() {
    let mut p = plan(vec![user(1, "Anna")]);
    p.dialplan.outbound_trunk = None;
    let r = render_builtin(&p);
    let ext = contents(&r, EXTENSIONS_FILE);
    assert!(!ext.contains("pstn"), "{ext}");
    assert!(values(ext, "hub-outbound", "exten").is_empty());
    assert_eq!(values(ext, "hub-users", "include"), vec!["hub-local", "hub-outbound", "hub-refuse"]);
    assert_eq!(values(ext, "hub-from-ivr", "include"), vec!["hub-local", "hub-refuse"]);
    assert!(values(ext, "hub-users", "exten").is_empty(), "no own extensions: they would beat the includes");
}

#[test]
fn every_file_starts_with_the_do_not_edit_comment() {
    let r = render_builtin(&plan(vec![user(1, "Anna")]));
    assert_eq!(r.files.iter().map(|f| f.name).collect::<Vec<_>>(), [USERS_FILE, TRUNK_FILE, EXTENSIONS_FILE]);
    for f in &r.files {
        let first = f.contents.lines().next().unwrap();
        assert!(first.starts_with(&format!("; {}: generated by the hub", f.name)), "{first}");
        assert!(f.contents.contains("Do not edit"));
    }
}

// ---- revisions ------------------------------------------------------------------------------

#[test]
fn each_endpoint_carries_its_revision() {
    let p = plan(vec![user(1, "Anna"), user(2, "Ben")]);
    let r = render_builtin(&p);
    assert_eq!(r.revisions.len(), 2);
    for u in &p.users {
        let rev = &r.revisions[&u.user_id];
        assert_eq!(rev.len(), REVISION_LEN);
        assert!(rev.bytes().all(|b| b.is_ascii_hexdigit()));
        let set_var = values(contents(&r, USERS_FILE), &u.sip_username, "set_var");
        assert_eq!(set_var, vec![format!("HUB_REV={rev}").as_str()]);
    }
    assert_ne!(r.revisions[&p.users[0].user_id], r.revisions[&p.users[1].user_id]);
    assert_eq!(render_builtin(&p), r, "the same plan renders the same bytes and revisions");
}

#[test]
fn a_revision_changes_with_its_user_and_with_the_templates_only() {
    let p = plan(vec![user(1, "Anna"), user(2, "Ben")]);
    let before = render_builtin(&p);
    let mut changed = p.clone();
    changed.users[0].secret = Secret::new("rotated-secret");
    let after = render_builtin(&changed);
    let (a, b) = (&p.users[0].user_id, &p.users[1].user_id);
    assert_ne!(before.revisions[a], after.revisions[a], "a new secret is a new revision");
    assert_eq!(before.revisions[b], after.revisions[b], "others untouched");

    let dir = tempfile::tempdir().unwrap();
    let user_template = TemplateName::PjsipUser.builtin_source().replace("remove_existing=no", "remove_existing=no\n");
    std::fs::write(dir.path().join("pjsip-user.hbs"), user_template).unwrap();
    let overridden = render(&Templates::load(Some(dir.path())).unwrap(), &p).unwrap();
    assert_ne!(before.revisions[a], overridden.revisions[a]);
    assert_ne!(before.revisions[b], overridden.revisions[b]);
}

#[test]
fn an_override_without_the_revision_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let without = TemplateName::PjsipUser.builtin_source().replace("set_var=HUB_REV={{rev}}\n", "");
    std::fs::write(dir.path().join("pjsip-user.hbs"), without).unwrap();
    let e = render(&Templates::load(Some(dir.path())).unwrap(), &plan(vec![user(1, "Anna")])).unwrap_err();
    assert!(matches!(&e, RenderError::MissingRevision { sip_username, .. } if sip_username == "u1-k3q9"), "{e:?}");
    assert!(e.to_string().contains("HUB_REV"), "{e}");

    let minimal = "[{{name}}]\ntype=endpoint\nset_var=HUB_REV={{rev}}\n";
    std::fs::write(dir.path().join("pjsip-user.hbs"), minimal).unwrap();
    let r = render(&Templates::load(Some(dir.path())).unwrap(), &plan(vec![user(1, "Anna")])).unwrap();
    assert!(contents(&r, USERS_FILE).contains("[u1-k3q9]\ntype=endpoint\nset_var=HUB_REV="));
}

#[test]
fn an_override_naming_a_missing_field_fails_in_strict_mode() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pjsip-trunk.hbs"), "[{{name}}]\nfoo={{no_such_field}}\n").unwrap();
    let e = render(&Templates::load(Some(dir.path())).unwrap(), &plan(vec![])).unwrap_err();
    assert!(matches!(e, RenderError::Render { .. }), "{e:?}");
}

// ---- writing and diffing ----------------------------------------------------------------------

#[cfg(unix)]
fn identity(path: &Path) -> (u64, std::time::SystemTime) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.ino(), m.modified().unwrap())
}

#[cfg(unix)]
#[test]
fn an_unchanged_render_writes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("etc/asterisk/hub");
    let p = plan(vec![user(1, "Anna"), user(2, "Ben")]);
    let r = render_builtin(&p);
    assert_eq!(write(&conf, &r).unwrap(), vec![USERS_FILE, TRUNK_FILE, EXTENSIONS_FILE], "creates the directory");
    for f in &r.files {
        let path = conf.join(f.name);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), f.contents);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
    }
    let before: Vec<_> = r.files.iter().map(|f| identity(&conf.join(f.name))).collect();
    assert!(write(&conf, &render_builtin(&p)).unwrap().is_empty());
    let after: Vec<_> = r.files.iter().map(|f| identity(&conf.join(f.name))).collect();
    assert_eq!(before, after, "same inode and mtime: untouched");

    let mut changed = p.clone();
    changed.users[1].display_name = "Ben Becker".into();
    assert_eq!(write(&conf, &render_builtin(&changed)).unwrap(), vec![USERS_FILE], "only what changed");
}

#[test]
fn a_crash_half_way_leaves_the_old_file_whole() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let old = render_builtin(&plan(vec![user(1, "Anna")]));
    write(dir.path(), &old).unwrap();
    let new = render_builtin(&plan(vec![user(1, "Anna"), user(2, "Ben")]));
    let path = dir.path().join(USERS_FILE);
    let new_users = contents(&new, USERS_FILE);
    let crash = crate::files::write_atomic_with(&path, FILE_MODE, |f| {
        f.write_all(&new_users.as_bytes()[..new_users.len() / 2])?;
        Err(std::io::Error::other("simulated crash"))
    });
    assert!(crash.is_err());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), contents(&old, USERS_FILE), "old file whole");

    // A temp file left behind by a process that died does not confuse the next write.
    let leftover = dir.path().join(format!(".{USERS_FILE}.tmp-999999"));
    std::fs::write(&leftover, &new_users[..10]).unwrap();
    assert_eq!(write(dir.path(), &new).unwrap(), vec![USERS_FILE, EXTENSIONS_FILE]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), new_users);
    assert!(diff(dir.path(), &new).unwrap().is_empty());
}

#[test]
fn write_reports_the_path_it_could_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let e = write(&blocker, &render_builtin(&plan(vec![]))).unwrap_err();
    assert!(matches!(&e, RenderError::Write { path, .. } if path == &blocker), "{e:?}");
}

#[test]
fn diff_shows_new_files_fully_added_and_changes_as_hunks() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(vec![user(1, "Anna")]);
    let r = render_builtin(&p);
    let d = diff(dir.path(), &r).unwrap();
    for f in &r.files {
        assert!(d.contains(&format!("--- /dev/null\n+++ b/{}\n", f.name)), "{d}");
        for line in f.contents.lines() {
            assert!(d.contains(&format!("\n+{line}\n")), "{line:?} added");
        }
    }
    assert!(!d.lines().any(|l| l.starts_with('-') && !l.starts_with("---")), "nothing removed");

    write(dir.path(), &r).unwrap();
    assert_eq!(diff(dir.path(), &r).unwrap(), "", "equal: empty");

    let mut changed = p.clone();
    changed.users[0].display_name = "Anna Becker".into();
    let d = diff(dir.path(), &render_builtin(&changed)).unwrap();
    assert!(d.starts_with(&format!("--- a/{USERS_FILE}\n+++ b/{USERS_FILE}\n@@ ")), "{d}");
    assert!(d.contains("\n-callerid=\"Anna\" <1001>\n") && d.contains("\n+callerid=\"Anna Becker\" <1001>\n"), "{d}");
    let removed = d.lines().filter(|l| l.starts_with('-') && !l.starts_with("---")).count();
    assert_eq!(removed, 3, "comment, callerid and revision lines: {d}");
    assert!(!d.contains(TRUNK_FILE) && !d.contains(EXTENSIONS_FILE), "{d}");
}

#[test]
fn a_large_plan_renders_the_same_as_its_parts() {
    // 2,500 users take the multi-threaded path on a machine with two or more cores; the
    // halves (under 2,048 users) take the single-threaded one.
    let users: Vec<PlannedUser> = (1..=2_500)
        .map(|n| PlannedUser {
            user_id: UserId::from_string(format!("id-{n:05}")),
            username: format!("user{n}"),
            display_name: format!("Name {n}\n[x]"),
            extension: Extension::new(format!("{}", 10_000 + n)).unwrap(),
            sip_username: format!("u{n}"),
            secret: Secret::new(format!("secret-{n}")),
        })
        .collect();
    let whole = render_builtin(&plan(users.clone()));
    let (a, b) = users.split_at(1_000);
    let (a, b) = (render_builtin(&plan(a.to_vec())), render_builtin(&plan(b.to_vec())));
    let header_len = header(USERS_FILE, TemplateName::PjsipUser).len();
    let joined = format!("{}{}", contents(&a, USERS_FILE), &contents(&b, USERS_FILE)[header_len..]);
    assert!(contents(&whole, USERS_FILE) == joined, "users file differs from its parts");
    let mut revisions = a.revisions.clone();
    revisions.extend(b.revisions.clone());
    assert_eq!(whole.revisions, revisions);
    let local = values(contents(&whole, EXTENSIONS_FILE), "hub-local", "exten");
    assert_eq!(local.len(), 2_500 + 2, "every user and both IVR numbers");
    assert!(local[2_499].starts_with("12500,1,Set(HUB_CONTACTS=${PJSIP_DIAL_CONTACTS(u2500)})"), "{}", local[2_499]);

    let dir = tempfile::tempdir().unwrap();
    let without = TemplateName::PjsipUser.builtin_source().replace("set_var=HUB_REV={{rev}}\n", "");
    std::fs::write(dir.path().join("pjsip-user.hbs"), without).unwrap();
    let e = render(&Templates::load(Some(dir.path())).unwrap(), &plan(users)).unwrap_err();
    assert!(matches!(e, RenderError::MissingRevision { .. }), "{e:?}");
}
