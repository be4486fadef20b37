//! The call API and the sandbox, driven through the simulator: each test writes a script,
//! runs it against a scripted caller and reads the transcript.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::io::CallerInfo;
use super::simulate::{Fixture, Simulation, parse_inputs};
use super::{CallOutcome, Limits, Scripts};

const DIRECTORY: &str = r#"{
  "directory": [
    { "id": "u1", "name": "Alice Liddell", "extension": "1001" },
    { "id": "u2", "name": "Bob Builder", "extension": "1002", "numbers": ["+4930"] }
  ],
  "http_allow": ["api.test"],
  "missing_prompts": ["greetings/*"],
  "GET https://api.test/hours": { "open": true, "days": [1, 2] },
  "POST https://api.test/echo": { "ok": 1 },
  "GET https://api.test/hang": { "hang": true }
}"#;

struct Run {
    outcome: CallOutcome,
    lines: Vec<String>,
}

impl Run {
    fn text(&self) -> String {
        self.lines.join("\n")
    }

    fn has(&self, line: &str) -> bool {
        self.lines.iter().any(|l| l == line)
    }
}

fn run_with(script: &str, digits: &str, limits: &Limits) -> Run {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.rhai"), script).unwrap();
    std::fs::write(dir.path().join("lib.rhai"), "fn twice(x) { x * 2 }\nfn boom() { let a = 1;\n  a.nope() }\n")
        .unwrap();
    let scripts = Scripts::new(dir.path(), BTreeMap::new(), limits);
    let caller = CallerInfo {
        number: "+15550100".into(),
        name: "Eve".into(),
        path: "sip".into(),
        dialled: "800".into(),
        headers: BTreeMap::from([("X-Mailbox".into(), "1002".into())]),
    };
    let sim = Simulation::new(parse_inputs(digits).unwrap(), caller, Fixture::from_json(DIRECTORY).unwrap(), false);
    let outcome = sim.run(&scripts, "t.rhai", limits).unwrap();
    Run { outcome, lines: sim.transcript() }
}

fn run(script: &str, digits: &str) -> Run {
    run_with(script, digits, &Limits::default())
}

fn failed(r: &Run) -> &super::ScriptFailure {
    match &r.outcome {
        CallOutcome::Failed(f) => f,
        other => panic!("expected a failure, got {other:?}\n{}", r.text()),
    }
}

/// The caller heard the error prompt, then the hub hung up, and the transcript names the place.
fn assert_failed_cleanly(r: &Run, line: usize) {
    let f = failed(r);
    assert_eq!((f.file.as_str(), f.line), ("t.rhai", Some(line)), "{}", r.text());
    let n = r.lines.len();
    assert!(n >= 3, "{}", r.text());
    assert!(
        r.lines[n - 3].starts_with("! error: ") && r.lines[n - 3].contains(&format!("(t.rhai:{line}:")),
        "{}",
        r.text()
    );
    assert_eq!(r.lines[n - 2..], ["> play error.wav", "* hangup"], "{}", r.text());
}

#[test]
fn answer_play_say_and_the_end_of_the_script() {
    let r = run(r#"answer(); play("hello.wav"); say("Hi"); log("n =", 3);"#, "");
    assert_eq!(r.lines, ["* answer", "> play hello.wav", "> say \"Hi\"", "* log: n = 3", "* hangup"]);
    assert_eq!(r.outcome, CallOutcome::Completed);
}

#[test]
fn play_with_barge_in_returns_the_digit_once() {
    let r = run(
        r#"let a = play("m.wav", #{ barge_in: true }); let b = say("x", #{ barge_in: true });
           let c = gather(#{ max_digits: 1, retries: 0 }); log(a, b, c);"#,
        "7 _",
    );
    assert!(r.has("* log: 7  "), "{}", r.text());
    assert!(r.has("< (no input, timeout 5000 ms)"), "{}", r.text());
}

#[test]
fn gather_stops_at_max_digits_terminator_or_timeout_and_retries_silence() {
    let r = run(
        r##"log(gather(#{ prompt: "p.wav", max_digits: 2 }));
            log(gather(#{ say: "ext", max_digits: 4, terminator: "#" }));
            log(gather(#{ prompt: "q.wav", max_digits: 4, timeout_ms: 3000, retries: 1 }));
            log("[" + gather(#{ prompt: "r.wav", retries: 1 }) + "]");"##,
        "1 2 3 # _ 4 _ _ _",
    );
    let logs: Vec<_> = r.lines.iter().filter(|l| l.starts_with("* log")).collect();
    assert_eq!(logs, ["* log: 12", "* log: 3", "* log: 4", "* log: []"], "{}", r.text());
    assert_eq!(r.lines.iter().filter(|l| *l == "> play q.wav").count(), 2, "silence replays the prompt");
    assert!(r.has("< (no input, timeout 3000 ms)"), "{}", r.text());
    assert_eq!(r.lines.iter().filter(|l| *l == "> play r.wav").count(), 2, "{}", r.text());
    let r = run(r#"gather(#{ max_digit: 2 })"#, "");
    assert!(failed(&r).message.contains("unknown option \"max_digit\""), "{:?}", failed(&r));
}

#[test]
fn record_returns_path_and_duration_or_unit() {
    let r = run(
        r#"let m = record(#{ max_seconds: 10, beep: false }); log(m.path, m.duration_ms);
           log(type_of(record(#{})));"#,
        "rec:30 _",
    );
    assert!(r.has("* record 10 s -> recording-1.wav"), "{}", r.text());
    assert!(r.has("* log: recording-1.wav 10000"), "{}", r.text());
    assert!(r.has("> beep") && r.has("* log: ()"), "{}", r.text());
}

#[test]
fn transfer_and_hangup_end_the_script() {
    let r = run(r#"transfer("1001"); say("never")"#, "");
    assert_eq!(r.lines, ["* transfer 1001"]);
    assert_eq!(r.outcome, CallOutcome::Transferred("1001".into()));
    let r = run(r#"try { hangup(); } catch { say("caught") } say("never")"#, "");
    assert_eq!(r.lines, ["* hangup"]);
    assert_eq!(r.outcome, CallOutcome::HungUp);
}

#[test]
fn a_caller_hanging_up_stops_the_script_quietly_even_inside_try() {
    let r =
        run(r#"loop { try { gather(#{ prompt: "m.wav" }); } catch { log("swallowed") } say("again"); }"#, "1 hangup");
    assert_eq!(r.outcome, CallOutcome::CallerHungUp, "{}", r.text());
    assert!(r.has("< caller hangs up"));
    assert!(!r.text().contains("swallowed") && !r.text().contains("error"), "{}", r.text());
}

#[test]
fn caller_describes_the_call() {
    let r = run(r#"let c = caller(); log(c.number + " " + c.name, c.path, c.dialled, c.headers["X-Mailbox"]);"#, "");
    assert!(r.has("* log: +15550100 Eve sip 800 1002"), "{}", r.text());
}

#[test]
fn http_get_and_post_give_json_and_refuse_other_hosts() {
    let r = run(
        r#"let h = http_get("https://api.test/hours"); log(h.open, h.days[1]);
           log(http_post("https://api.test/echo", #{ a: [1, "b"] }).ok);
           try { http_get("https://api.test/nope") } catch (e) { log(e) }
           http_get("https://evil.test/")"#,
        "",
    );
    assert!(r.has("* log: true 2"), "{}", r.text());
    assert!(r.has(r#"* http POST https://api.test/echo {"a":[1,"b"]} -> {"ok":1}"#), "{}", r.text());
    assert!(r.has("* log: http GET https://api.test/nope: not in the fixture"), "{}", r.text());
    assert!(failed(&r).message.contains("\"evil.test\" is not in [ivr] http_allow"), "{:?}", failed(&r));
    assert_failed_cleanly(&r, 4);
}

#[test]
fn directory_functions_give_maps() {
    let r = run(
        r#"let p = directory_search("bob")[0]; log(p.id, p.name, p.extension, p.numbers[0]);
           log(user_by_extension("1001").name, type_of(user_by_extension("9")));
           log(directory_keypad("254")[0].name, directory_keypad("262").len());"#,
        "",
    );
    assert!(r.has("* log: u2 Bob Builder 1002 +4930"), "{}", r.text());
    assert!(r.has("* log: Alice Liddell ()"), "{}", r.text());
    assert!(r.has("* log: Alice Liddell 1"), "{}", r.text());
}

#[test]
fn voicemail_deposit_records_then_files_the_message() {
    let r = run(r#"log(voicemail_deposit("1002")); log(voicemail_deposit(user_by_extension("1001")));"#, "rec:400 _");
    assert!(r.has("* record 180 s -> voicemail-1.wav"), "capped by [voicemail] max_message\n{}", r.text());
    assert!(r.has("* deposit to 1002 (voicemail-1.wav)") && r.has("* log: true"), "{}", r.text());
    assert!(r.has("* log: false"), "nothing said: nothing deposited\n{}", r.text());
}

#[test]
fn sleep_and_missing_prompts() {
    let r = run(r#"sleep(250); try { play("greetings/u1.wav") } catch (e) { log(e) }"#, "");
    assert!(r.has("* sleep 250 ms"), "{}", r.text());
    assert!(r.has("* log: prompt greetings/u1.wav not found"), "{}", r.text());
}

#[test]
fn imports_reach_sibling_scripts_only_and_errors_name_the_module_file() {
    let r = run("import \"lib\" as l;\nlog(l::twice(21));\nl::boom();", "");
    assert!(r.has("* log: 42"), "{}", r.text());
    let f = failed(&r);
    assert_eq!((f.file.as_str(), f.line), ("lib.rhai", Some(3)), "{f:?}");
    for bad in ["../lib", "/etc/passwd", "sub/lib"] {
        let r = run(&format!("import \"{bad}\" as l;"), "");
        assert!(failed(&r).message.contains("not found"), "{bad}: {:?}", failed(&r));
    }
}

#[test]
fn an_infinite_loop_stops_at_the_operation_limit() {
    let limits = Limits { max_operations: 10_000, ..Limits::default() };
    let r = run_with("answer();\nlet i = 0;\nloop { i += 1; }", "", &limits);
    assert!(failed(&r).message.contains("max_operations"), "{:?}", failed(&r));
    assert_failed_cleanly(&r, 3);
}

#[test]
fn deep_recursion_stops_at_the_depth_limit() {
    let r = run("fn down(n) { down(n + 1) }\n\ndown(0);", "");
    assert!(failed(&r).message.contains("max_call_depth = 32"), "{:?}", failed(&r));
    assert_failed_cleanly(&r, 3);
}

#[test]
fn a_huge_string_stops_at_the_size_limit() {
    let r = run("let s = \"x\";\nloop {\n  s += s;\n}", "");
    assert!(failed(&r).message.contains("max_string_size"), "{:?}", failed(&r));
    assert_failed_cleanly(&r, 3);
}

#[test]
fn a_hanging_http_call_stops_at_the_http_timeout() {
    let limits = Limits { http_timeout: Duration::from_millis(200), ..Limits::default() };
    let started = Instant::now();
    let r = run_with("answer();\nhttp_get(\"https://api.test/hang\");", "", &limits);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(failed(&r).message.contains("no answer within 200ms"), "{:?}", failed(&r));
    assert_failed_cleanly(&r, 2);
}

#[test]
fn a_hanging_http_call_stops_at_the_call_wall_time_even_when_caught() {
    let limits = Limits { max_call_time: Duration::from_millis(300), ..Limits::default() };
    let started = Instant::now();
    let r = run_with("answer();\ntry { http_get(\"https://api.test/hang\"); } catch { loop {} }", "", &limits);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(failed(&r).message.contains("max_call_time"), "{:?}", failed(&r));
    assert_failed_cleanly(&r, 2);
}

#[test]
fn a_busy_loop_stops_at_the_call_wall_time() {
    let limits = Limits { max_call_time: Duration::from_millis(200), max_operations: u64::MAX, ..Limits::default() };
    let r = run_with("answer();\nloop { }", "", &limits);
    assert!(failed(&r).message.contains("max_call_time"), "{:?}", failed(&r));
}

#[test]
fn eval_and_compile_errors_fail_cleanly() {
    let r = run("answer();\nlet x = ;", "");
    assert_failed_cleanly(&r, 2);
    assert!(!r.has("* answer"), "a script that does not compile never runs");
    let r = run("eval(\"1\")", "");
    assert!(matches!(r.outcome, CallOutcome::Failed(_)));
}
