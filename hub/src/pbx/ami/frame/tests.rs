//! The decoder against every real Asterisk 22 transcript in `shared/fixtures/ami`, fed both
//! whole and in the chunks the server's TCP stream actually delivered.

use super::*;
use crate::pbx::ami::fixtures::{fixtures, names, server};

fn decode_all(decoder: &mut Decoder) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(m) = decoder.next_message().expect("valid AMI") {
        out.push(m);
    }
    out
}

#[test]
fn every_fixture_decodes_the_same_whole_or_in_the_real_chunks() {
    let names = names();
    assert!(names.len() >= 60, "only {} fixtures found", names.len());
    for name in names {
        let whole = server(&name);
        let timeline = std::fs::read_to_string(fixtures().join(format!("{name}.timeline.jsonl"))).unwrap();
        let mut d = Decoder::server();
        let mut chunked = Vec::new();
        for line in timeline.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["dir"] == "S" {
                d.feed(v["data"].as_str().unwrap().as_bytes());
                chunked.extend(decode_all(&mut d));
            }
        }
        assert_eq!(chunked, whole, "{name}: chunked decoding differs");
        for m in &whole {
            assert_ne!(m.kind, Kind::Other, "{name}: {m:?}");
        }
        // Byte by byte, the hardest splitting of all.
        let bytes = std::fs::read(fixtures().join(format!("{name}.server"))).unwrap();
        let mut d = Decoder::server();
        let mut bytewise = Vec::new();
        for b in bytes {
            d.feed(&[b]);
            bytewise.extend(decode_all(&mut d));
        }
        assert_eq!(bytewise, whole, "{name}: byte-wise decoding differs");
    }
}

#[test]
fn every_client_transcript_decodes_as_actions() {
    for name in names() {
        let bytes = std::fs::read(fixtures().join(format!("{name}.client"))).unwrap_or_default();
        let mut d = Decoder::client();
        d.feed(&bytes);
        // 10c sends over-long lines on purpose; still no panic and no error for the rest.
        let msgs = decode_all(&mut d);
        for m in msgs.iter().filter(|m| m.kind == Kind::Other) {
            assert!(
                m.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("Action")) || name.starts_with("10"),
                "{name}: {m:?}"
            );
        }
    }
}

#[test]
fn bare_lf_values_are_trimmed() {
    let msgs = server("06f-pjsip-show-endpoint-unknown");
    let err = msgs.iter().find(|m| m.get("Response") == Some("Error")).unwrap();
    assert_eq!(err.get("Message"), Some("Unable to retrieve endpoint 9999"));
}

#[test]
fn values_keep_colon_space_and_event_list_items_carry_the_action_id() {
    let msgs = server("12a-events-action-and-userevent");
    let user_event = msgs.iter().find(|m| m.name() == Some("UserEvent")).expect("a UserEvent");
    assert!(user_event.headers.iter().any(|(_, v)| v.contains(": ")), "{user_event:?}");

    let list = server("06a-pjsip-show-endpoints");
    let start = list.iter().find(|m| m.kind == Kind::Response).unwrap();
    let start = if start.get("EventList").is_some() {
        start
    } else {
        list.iter().find(|m| m.get("EventList") == Some("start")).unwrap()
    };
    assert_eq!(start.get("EventList"), Some("start"));
    let id = start.action_id().unwrap();
    let items = list
        .iter()
        .filter(|m| m.kind == Kind::Event && m.action_id() == Some(id) && m.get("EventList").is_none())
        .count();
    let complete = list.iter().find(|m| m.get("EventList") == Some("Complete")).unwrap();
    assert_eq!(complete.get("ListItems").unwrap().parse::<usize>().unwrap(), items);
}

#[test]
fn command_output_lines_and_errors() {
    let ok = server("04c-command-dialplan-reload");
    let out = ok.iter().find(|m| m.get("Message") == Some("Command output follows")).unwrap();
    assert!(out.all("Output").count() >= 1);
    let bad = server("04e-command-pjsip-reload-invalid");
    let err = bad.iter().find(|m| m.get("Response") == Some("Error")).unwrap();
    assert!(err.all("Output").any(|l| l.starts_with("No such command 'pjsip reload'")), "{err:?}");
}

#[test]
fn pipelined_answers_come_in_order() {
    let msgs = server("10e-pipelined-actions");
    let answered: Vec<_> = msgs.iter().filter(|m| m.kind == Kind::Response).filter_map(Message::action_id).collect();
    let mut d = Decoder::client();
    d.feed(&std::fs::read(fixtures().join("10e-pipelined-actions.client")).unwrap());
    let sent: Vec<String> = decode_all(&mut d).iter().filter_map(|m| m.action_id().map(str::to_string)).collect();
    assert!(sent.len() >= 4, "{sent:?}");
    assert_eq!(answered, sent, "one answer per action, in the order sent");
}

#[test]
fn secrets_are_not_printed_and_actions_cannot_be_split() {
    let mut d = Decoder::client();
    d.feed(&Message::encode_action(&[
        ("Action", "Login"),
        ("Username", "admin"),
        ("Secret", "s3cret\r\n\r\nAction: Logoff"),
    ]));
    let m = d.next_message().unwrap().unwrap();
    assert_eq!(m.headers.len(), 3, "a value with line breaks stays one header: {m:?}");
    assert!(d.next_message().unwrap().is_none());
    assert!(!format!("{m:?}").contains("s3cret"));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut d = Decoder::server();
    d.feed(b"HTTP/1.1 200 OK\r\n\r\n");
    assert!(matches!(d.next_message(), Err(FrameError::BadGreeting(_))));
    let mut d = Decoder::server();
    d.feed(b"Asterisk Call Manager/11.0.0\r\n");
    d.feed(&vec![b'x'; MAX_MESSAGE + 10]);
    assert_eq!(d.next_message(), Err(FrameError::TooLong));
}
