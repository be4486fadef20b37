//! The whole transition table, row by row, and the races that matter.

use super::*;

const C: DeviceId = 1; // caller
const R1: DeviceId = 2; // callee device
const R2: DeviceId = 3; // another callee device
const S: DeviceId = 9; // a stranger

fn now() -> Timestamp {
    Timestamp::from_millis(1_000)
}

fn ringing() -> Call {
    Call::ring(
        CallId::from_string("c"),
        C,
        UserId::from_string("a"),
        UserId::from_string("b"),
        vec![R1, R2],
        false,
        now(),
    )
}

fn answered() -> Call {
    let mut c = ringing();
    c.step(Input::Accept(R1), now()).unwrap();
    c
}

fn ended() -> Call {
    let mut c = answered();
    c.step(Input::Hangup(C), now()).unwrap();
    c
}

use EndReason::*;
use Notice::*;

type Row = (&'static str, fn() -> Call, Input, Result<Vec<(DeviceId, Notice)>, Refusal>, Phase);

#[test]
fn transition_table() {
    let table: Vec<Row> = vec![
        // Ringing
        (
            "accept by ringing device",
            ringing,
            Input::Accept(R1),
            Ok(vec![(R1, Accepted), (C, Answered), (R2, AnsweredElsewhere)]),
            Phase::Answered { by: R1 },
        ),
        ("accept by caller", ringing, Input::Accept(C), Err(Refusal::NotYourCall), Phase::Ringing),
        ("accept by stranger", ringing, Input::Accept(S), Err(Refusal::NotYourCall), Phase::Ringing),
        (
            "decline by ringing device",
            ringing,
            Input::Decline(R2),
            Ok(vec![(C, Ended(Declined)), (R1, Ended(Declined)), (R2, Ended(Declined))]),
            Phase::Ended(Declined),
        ),
        ("decline by caller", ringing, Input::Decline(C), Err(Refusal::NotYourCall), Phase::Ringing),
        ("decline by stranger", ringing, Input::Decline(S), Err(Refusal::NotYourCall), Phase::Ringing),
        (
            "hang-up by ringing device = decline",
            ringing,
            Input::Hangup(R1),
            Ok(vec![(C, Ended(Declined)), (R1, Ended(Declined)), (R2, Ended(Declined))]),
            Phase::Ended(Declined),
        ),
        (
            "hang-up by caller = cancel",
            ringing,
            Input::Hangup(C),
            Ok(vec![(C, Ended(Cancelled)), (R1, Ended(Cancelled)), (R2, Ended(Cancelled))]),
            Phase::Ended(Cancelled),
        ),
        ("hang-up by stranger", ringing, Input::Hangup(S), Err(Refusal::NotYourCall), Phase::Ringing),
        (
            "ring timeout",
            ringing,
            Input::RingTimeout,
            Ok(vec![(C, Ended(NoAnswer)), (R1, Ended(NoAnswer)), (R2, Ended(NoAnswer))]),
            Phase::Ended(NoAnswer),
        ),
        (
            "caller gone",
            ringing,
            Input::DeviceGone(C),
            Ok(vec![(R1, Ended(Cancelled)), (R2, Ended(Cancelled))]),
            Phase::Ended(Cancelled),
        ),
        ("one ringing device gone", ringing, Input::DeviceGone(R1), Ok(vec![]), Phase::Ringing),
        ("stranger gone", ringing, Input::DeviceGone(S), Ok(vec![]), Phase::Ringing),
        ("relay before answer (caller)", ringing, Input::Relay(C), Err(Refusal::NotAnswered), Phase::Ringing),
        ("relay before answer (callee)", ringing, Input::Relay(R1), Err(Refusal::NotAnswered), Phase::Ringing),
        ("relay by stranger", ringing, Input::Relay(S), Err(Refusal::NotYourCall), Phase::Ringing),
        // Answered by R1
        ("second accept", answered, Input::Accept(R2), Err(Refusal::AlreadyAnswered), Phase::Answered { by: R1 }),
        (
            "winner accepts again",
            answered,
            Input::Accept(R1),
            Err(Refusal::AlreadyAnswered),
            Phase::Answered { by: R1 },
        ),
        ("accept by caller", answered, Input::Accept(C), Err(Refusal::NotYourCall), Phase::Answered { by: R1 }),
        ("accept by stranger", answered, Input::Accept(S), Err(Refusal::NotYourCall), Phase::Answered { by: R1 }),
        ("late decline", answered, Input::Decline(R2), Err(Refusal::AlreadyAnswered), Phase::Answered { by: R1 }),
        (
            "hang-up by caller",
            answered,
            Input::Hangup(C),
            Ok(vec![(C, Ended(Completed)), (R1, Ended(Completed))]),
            Phase::Ended(Completed),
        ),
        (
            "hang-up by callee",
            answered,
            Input::Hangup(R1),
            Ok(vec![(C, Ended(Completed)), (R1, Ended(Completed))]),
            Phase::Ended(Completed),
        ),
        ("hang-up by loser", answered, Input::Hangup(R2), Err(Refusal::NotYourCall), Phase::Answered { by: R1 }),
        ("stale ring timeout", answered, Input::RingTimeout, Ok(vec![]), Phase::Answered { by: R1 }),
        (
            "caller gone",
            answered,
            Input::DeviceGone(C),
            Ok(vec![(R1, Ended(ConnectionLost))]),
            Phase::Ended(ConnectionLost),
        ),
        (
            "callee gone",
            answered,
            Input::DeviceGone(R1),
            Ok(vec![(C, Ended(ConnectionLost))]),
            Phase::Ended(ConnectionLost),
        ),
        ("loser gone", answered, Input::DeviceGone(R2), Ok(vec![]), Phase::Answered { by: R1 }),
        ("relay caller → callee", answered, Input::Relay(C), Ok(vec![(R1, Relay)]), Phase::Answered { by: R1 }),
        ("relay callee → caller", answered, Input::Relay(R1), Ok(vec![(C, Relay)]), Phase::Answered { by: R1 }),
        ("relay by loser", answered, Input::Relay(R2), Err(Refusal::NotYourCall), Phase::Answered { by: R1 }),
        ("relay by stranger", answered, Input::Relay(S), Err(Refusal::NotYourCall), Phase::Answered { by: R1 }),
        // Ended
        ("accept after end", ended, Input::Accept(R1), Err(Refusal::Ended), Phase::Ended(Completed)),
        ("decline after end", ended, Input::Decline(R2), Err(Refusal::Ended), Phase::Ended(Completed)),
        ("hang-up after end", ended, Input::Hangup(C), Err(Refusal::Ended), Phase::Ended(Completed)),
        ("relay after end", ended, Input::Relay(C), Err(Refusal::Ended), Phase::Ended(Completed)),
        ("timer after end", ended, Input::RingTimeout, Ok(vec![]), Phase::Ended(Completed)),
        ("disconnect after end", ended, Input::DeviceGone(C), Ok(vec![]), Phase::Ended(Completed)),
    ];
    // Every (phase, input kind, role) combination is in the table.
    assert_eq!(table.len(), 16 + 16 + 6);
    for (name, make, input, want, phase) in table {
        let mut call = make();
        let before = call.clone();
        let got = call.step(input, now());
        assert_eq!(got, want, "{name}");
        assert_eq!(call.phase, phase, "{name}");
        if got.is_err() {
            assert_eq!(call, before, "{name}: a refused input changes nothing");
        }
        if call.is_over() {
            assert!(call.ended_at.is_some() && call.ringing.is_empty(), "{name}");
        }
    }
}

#[test]
fn accept_on_two_devices_at_once_has_one_winner() {
    let mut call = ringing();
    let first = call.step(Input::Accept(R2), now()).unwrap();
    assert!(first.contains(&(R1, AnsweredElsewhere)));
    assert_eq!(call.step(Input::Accept(R1), now()), Err(Refusal::AlreadyAnswered));
    assert_eq!(call.phase, Phase::Answered { by: R2 });
    assert_eq!(call.peer_of(C), Some(R2));
    assert_eq!(call.peer_of(R2), Some(C));
    assert_eq!(call.peer_of(R1), None);
}

#[test]
fn cancel_while_accepting() {
    // The cancel is handled first: the accept finds the call over.
    let mut call = ringing();
    call.step(Input::Hangup(C), now()).unwrap();
    assert_eq!(call.step(Input::Accept(R1), now()), Err(Refusal::Ended));
    // The accept is handled first: the cancel is now a hang-up of an answered call.
    let mut call = ringing();
    call.step(Input::Accept(R1), now()).unwrap();
    assert_eq!(call.step(Input::Hangup(C), now()).unwrap(), vec![(C, Ended(Completed)), (R1, Ended(Completed))]);
}

#[test]
fn hang_up_crossing_an_offer() {
    let mut call = answered();
    call.step(Input::Hangup(R1), now()).unwrap();
    assert_eq!(call.step(Input::Relay(C), now()), Err(Refusal::Ended), "the offer finds the call over");
}

#[test]
fn last_ringing_device_gone_ends_unanswered_and_busy_offline_calls_are_born_ended() {
    let mut call = ringing();
    call.step(Input::DeviceGone(R1), now()).unwrap();
    assert_eq!(call.step(Input::DeviceGone(R2), now()).unwrap(), vec![(C, Ended(NoAnswer))]);
    let busy =
        Call::unreachable(CallId::from_string("x"), C, UserId::from_string("a"), UserId::from_string("b"), Busy, now());
    assert!(busy.is_over());
    assert_eq!(Busy.outcome(), crate::model::CallOutcome::Busy);
    assert_eq!(ConnectionLost.outcome(), crate::model::CallOutcome::Failed);
}

#[test]
fn every_path_ends() {
    // Drive random input sequences: the call always reaches Ended when the timer and
    // hang-ups come, and never leaves it.
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let devices = [C, R1, R2, S];
    for _ in 0..2_000 {
        let mut call = ringing();
        for _ in 0..rng.random_range(0..8) {
            let d = devices[rng.random_range(0..devices.len())];
            let input = match rng.random_range(0..6) {
                0 => Input::Accept(d),
                1 => Input::Decline(d),
                2 => Input::Hangup(d),
                3 => Input::DeviceGone(d),
                4 => Input::Relay(d),
                _ => Input::RingTimeout,
            };
            let was_over = call.is_over();
            let _ = call.step(input, now());
            assert!(!was_over || call.is_over(), "an ended call came back");
        }
        let _ = call.step(Input::RingTimeout, now());
        let _ = call.step(Input::Hangup(C), now());
        assert!(call.is_over(), "{call:?}");
    }
}
