//! Digits carried in SIP INFO bodies, as Asterisk (`dtmf_mode=info`) and many gateways send them.
//!
//! - `application/dtmf-relay` (Cisco, what Asterisk sends): `Signal=5` and `Duration=160` lines,
//!   the duration in milliseconds;
//! - `application/dtmf`: the body is the digit alone (or its RFC 4733 event number).
//!
//! Anything else is not a digit: the INFO gets `415 Unsupported Media Type`, an unreadable digit
//! `400`.

use super::media_port::Digit;

/// Why an INFO body is not a digit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DtmfInfoError {
    /// A content type other than the two above.
    #[error("unsupported INFO content type {0:?}")]
    UnsupportedType(String),
    /// The body does not name a digit.
    #[error("no digit in the INFO body")]
    NoDigit,
}

/// The content types [`parse`] accepts, for `Accept` in a `415`.
pub const ACCEPTED: &str = "application/dtmf-relay, application/dtmf";

/// The digit in an INFO of `content_type` with `body`.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Digit, DtmfInfoError> {
    let media_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let text = String::from_utf8_lossy(body);
    match media_type.as_str() {
        "application/dtmf-relay" => {
            let mut digit = None;
            let mut duration_ms = 0;
            for line in text.lines() {
                let Some((key, value)) = line.split_once('=') else { continue };
                match key.trim().to_ascii_lowercase().as_str() {
                    "signal" => digit = signal(value.trim()),
                    "duration" => duration_ms = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
            digit.map(|digit| Digit { digit, duration_ms }).ok_or(DtmfInfoError::NoDigit)
        }
        "application/dtmf" => {
            signal(text.trim()).map(|digit| Digit { digit, duration_ms: 0 }).ok_or(DtmfInfoError::NoDigit)
        }
        other => Err(DtmfInfoError::UnsupportedType(other.to_owned())),
    }
}

/// The DTMF events of RFC 4733 §3.2, by event number (10 `*`, 11 `#`, 12–15 `A`–`D`, 16 flash).
const EVENTS: &[u8; 17] = b"0123456789*#ABCD!";

/// The digit of an RFC 4733 event number, if it is a DTMF event.
pub fn event_digit(event: u8) -> Option<char> {
    EVENTS.get(usize::from(event)).map(|b| char::from(*b))
}

/// A digit from its character or its RFC 4733 event number.
fn signal(value: &str) -> Option<char> {
    if let Ok(n) = value.parse::<u8>() {
        return event_digit(n);
    }
    let mut chars = value.chars();
    let c = chars.next()?.to_ascii_uppercase();
    (chars.next().is_none() && EVENTS.contains(&u8::try_from(c).ok()?)).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_relay_as_asterisk_sends_it() {
        let d = parse("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n").unwrap();
        assert_eq!(d, Digit { digit: '5', duration_ms: 160 });
        assert_eq!(parse("Application/DTMF-Relay", b"Signal= #\nDuration= 250").unwrap().digit, '#');
        assert_eq!(parse("application/dtmf-relay", b"Signal=11\r\n").unwrap().digit, '#');
        assert_eq!(parse("application/dtmf-relay", b"Signal=16\r\n").unwrap().digit, '!');
    }

    #[test]
    fn plain_dtmf_bodies() {
        assert_eq!(parse("application/dtmf", b"7").unwrap(), Digit { digit: '7', duration_ms: 0 });
        assert_eq!(parse("application/dtmf", b"10\r\n").unwrap().digit, '*');
        assert_eq!(parse("application/dtmf", b"d").unwrap().digit, 'D');
    }

    #[test]
    fn what_is_not_a_digit_is_refused() {
        assert_eq!(parse("application/dtmf-relay", b"Duration=100"), Err(DtmfInfoError::NoDigit));
        assert_eq!(parse("application/dtmf", b"17"), Err(DtmfInfoError::NoDigit));
        assert_eq!(parse("application/dtmf", b"xy"), Err(DtmfInfoError::NoDigit));
        assert!(matches!(parse("text/plain", b"5"), Err(DtmfInfoError::UnsupportedType(_))));
    }
}
