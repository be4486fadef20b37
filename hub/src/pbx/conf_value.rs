//! Values on their way into Asterisk config: checked against a strict charset, or sanitized,
//! so that no value can change the structure of a generated file.
//!
//! Asterisk's config parser (`main/config.c`) gives meaning to a few characters anywhere in a
//! line: `;` starts a comment (`\;` is a literal semicolon), a line starting with `[` opens a
//! section and one starting with `#` is a directive (`#include`, `#exec`), and a line break ends
//! the value. On top of that the dialplan expands `${…}` and splits application arguments on
//! `,`, and `callerid=` parses `"name" <number>`.
//!
//! ```text
//!  identifiers (endpoint, context, transport…)   [A-Za-z0-9_.-]      else ValueError
//!  numbers (extensions, IVR numbers)             [0-9*#+]            else ValueError
//!  outbound patterns                              _[0-9XZN.!\[\]\-*#+] else ValueError
//!  secrets                                        no control chars     else ValueError
//!  free text (display names, login names)         sanitized: never refused
//!  every {{value}} in every template              escape(): the safety net
//! ```

use std::borrow::Cow;

/// Longest free text kept, in characters: a caller-ID name or a comment, never a paragraph.
pub const FREE_TEXT_MAX_CHARS: usize = 80;

/// Longest identifier accepted; Asterisk's own object names are far shorter in practice.
pub const IDENTIFIER_MAX_LEN: usize = 64;

/// Longest dialled number or pattern accepted.
pub const NUMBER_MAX_LEN: usize = 32;

/// A value that may not go into Asterisk config.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value:?}: {reason}")]
pub struct ValueError {
    /// Which plan field, e.g. `users[0190…].sip_username` or `dialplan.outbound_patterns`.
    pub field: String,
    /// The refused value, shortened (secrets are never shown).
    pub value: String,
    /// What rule it broke.
    pub reason: &'static str,
}

impl ValueError {
    fn new(field: &str, value: &str, reason: &'static str) -> Self {
        let value: String = value.chars().take(IDENTIFIER_MAX_LEN).collect();
        Self { field: field.to_string(), value, reason }
    }
}

/// Checks an object or context name: endpoint, AOR, auth, context, transport, trunk names.
pub fn identifier<'a>(field: &str, value: &'a str) -> Result<&'a str, ValueError> {
    if value.is_empty() || value.len() > IDENTIFIER_MAX_LEN {
        return Err(ValueError::new(field, value, "must be 1 to 64 characters"));
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        return Err(ValueError::new(field, value, "may contain only A-Z, a-z, 0-9, '_', '.' and '-'"));
    }
    Ok(value)
}

/// Checks a literal dialled number (an extension or an IVR number): never a pattern, since a
/// pattern starts with `_`.
pub fn number<'a>(field: &str, value: &'a str) -> Result<&'a str, ValueError> {
    if value.is_empty() || value.len() > NUMBER_MAX_LEN {
        return Err(ValueError::new(field, value, "must be 1 to 32 characters"));
    }
    if !value.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'*' | b'#' | b'+')) {
        return Err(ValueError::new(field, value, "may contain only digits, '*', '#' and '+'"));
    }
    Ok(value)
}

/// Checks an Asterisk extension pattern for outbound dialling: `_` and then digits, `X` `Z` `N`,
/// character classes, `*` `#` `+`, and a final `.` or `!`. A pattern that matches everything
/// (`_.`, `_!`) is refused: it would send any dialled string to the PSTN.
pub fn pattern<'a>(field: &str, value: &'a str) -> Result<&'a str, ValueError> {
    let Some(body) = value.strip_prefix('_') else {
        return Err(ValueError::new(field, value, "a pattern starts with '_'"));
    };
    if body.is_empty() || value.len() > NUMBER_MAX_LEN {
        return Err(ValueError::new(field, value, "must be '_' and 1 to 31 characters"));
    }
    if !body.bytes().all(|b| b.is_ascii_digit() || b"XZN.![]-*#+".contains(&b)) {
        return Err(ValueError::new(field, value, "after '_' only digits, X, Z, N, [, ], -, *, #, +, '.' and '!'"));
    }
    if body.starts_with(['.', '!']) {
        return Err(ValueError::new(field, value, "would match every number"));
    }
    if let Some(pos) = body.find(['.', '!'])
        && pos != body.len() - 1
    {
        return Err(ValueError::new(field, value, "'.' or '!' may only end a pattern"));
    }
    let mut open = false;
    let mut class_len = 0;
    for b in body.bytes() {
        match (b, open) {
            (b'[', false) => (open, class_len) = (true, 0),
            (b']', true) if class_len > 0 => open = false,
            (b'[' | b']', _) => {
                return Err(ValueError::new(field, value, "character classes must be [..], not empty or nested"));
            }
            (_, true) => class_len += 1,
            _ => {}
        }
    }
    if open {
        return Err(ValueError::new(field, value, "unclosed '['"));
    }
    Ok(value)
}

/// Checks an IP address (`media_address`): parsed, so nothing else can pass.
pub fn ip_address<'a>(field: &str, value: &'a str) -> Result<&'a str, ValueError> {
    value
        .parse::<std::net::IpAddr>()
        .map(|_| value)
        .map_err(|_| ValueError::new(field, value, "must be an IPv4 or IPv6 address"))
}

/// Checks a password before it is exposed into an auth section. An empty password would let
/// anyone register as the user; control characters or edge spaces would be mangled by the
/// parser. The error never shows the secret.
pub fn secret<'a>(field: &str, value: &'a crate::model::Secret) -> Result<&'a str, ValueError> {
    let s = value.expose();
    let reason = if s.is_empty() {
        "must not be empty"
    } else if s.chars().any(char::is_control) {
        "must not contain control characters"
    } else if s.trim() != s {
        "must not start or end with whitespace"
    } else {
        return Ok(s);
    };
    Err(ValueError { field: field.to_string(), value: crate::model::REDACTED.to_string(), reason })
}

/// Characters that mean something to Asterisk's config parser, the `callerid=` syntax or the
/// dialplan: comment, section, assignment, directive, quoting, number brackets, escapes,
/// argument separator, variable expansion.
const FREE_TEXT_REMOVED: &[char] = &[';', '[', ']', '=', '#', '"', '<', '>', '\\', ',', '$'];

/// Invisible characters that could make a comment read differently than it parses ("Trojan
/// Source"): zero-width characters, bidirectional overrides and isolates, the BOM.
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Makes free text (a display name from the identity provider, a login name) safe for a
/// `callerid=` name or a comment: control characters, line breaks and tabs become spaces,
/// config syntax characters become spaces, whitespace is collapsed and trimmed, and the result
/// is cut to [`FREE_TEXT_MAX_CHARS`] characters. Letters of any script stay.
pub fn free_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(FREE_TEXT_MAX_CHARS * 4));
    let mut chars = 0;
    let mut space = false;
    for c in value.chars() {
        if c.is_whitespace() || c.is_control() || invisible(c) || FREE_TEXT_REMOVED.contains(&c) {
            space = !out.is_empty();
            continue;
        }
        if space {
            if chars + 2 > FREE_TEXT_MAX_CHARS {
                break;
            }
            out.push(' ');
            chars += 1;
            space = false;
        }
        if chars == FREE_TEXT_MAX_CHARS {
            break;
        }
        out.push(c);
        chars += 1;
    }
    out
}

/// The template engine's escape function, applied to every `{{value}}` in every template,
/// built-in or override: control characters become spaces (no value can end a line) and `;`
/// becomes `\;` (no value can start a comment). Validated identifiers and sanitized text pass
/// unchanged; this is the net under them.
pub fn escape(value: &str) -> String {
    escape_cow(value).into_owned()
}

fn escape_cow(value: &str) -> Cow<'_, str> {
    if !value.chars().any(|c| c == ';' || c.is_control()) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Secret;

    #[test]
    fn identifiers_take_only_their_charset() {
        assert_eq!(identifier("f", "alice-7f3a_x.y"), Ok("alice-7f3a_x.y"));
        for bad in ["", "a b", "a;b", "a]b", "[a", "a=b", "a\nb", "a\0", "é", "a,b", "a/b", "${X}"] {
            let e = identifier("users[u1].sip_username", bad).unwrap_err();
            assert_eq!(e.field, "users[u1].sip_username");
            assert!(e.to_string().contains("users[u1].sip_username"), "{e}");
        }
        assert!(identifier("f", &"a".repeat(64)).is_ok());
        assert!(identifier("f", &"a".repeat(65)).is_err());
    }

    #[test]
    fn numbers_are_digits_star_hash_plus() {
        for good in ["800", "*97", "#1", "+4930123"] {
            assert_eq!(number("f", good), Ok(good));
        }
        for bad in ["", "_X.", "80 0", "8;0", "abc", "8\n"] {
            assert!(number("dialplan.ivr_numbers", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn patterns_are_strict() {
        for good in ["_0[1-9]XXXXXXXX", "_00X.", "_+49X!", "_NXXNXXXXXX", "_[*#]X", "_1"] {
            assert_eq!(pattern("f", good), Ok(good), "{good}");
        }
        for bad in [
            "0123",            // not a pattern
            "_",               // empty
            "_.",              // everything
            "_!",              // everything
            "_X.X",            // text after '.'
            "_0[1-9",          // unclosed class
            "_0]",             // stray bracket
            "_0[]",            // empty class
            "_0[[1]]",         // nested
            "_0;X",            // comment
            "_0\nexten => _X", // line break
            "_x.",             // lower case is not in the charset
            "_0${EXTEN}",      // expansion
        ] {
            assert!(pattern("dialplan.outbound_patterns", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ip_addresses_are_parsed() {
        assert!(ip_address("f", "192.0.2.10").is_ok());
        assert!(ip_address("f", "2001:db8::1").is_ok());
        assert!(ip_address("f", "192.0.2.10\nmedia_address=1.2.3.4").is_err());
        assert!(ip_address("f", "example.org").is_err());
    }

    #[test]
    fn bad_secrets_are_refused_without_being_shown() {
        assert_eq!(secret("f", &Secret::new("s3cr3t-_AZ")), Ok("s3cr3t-_AZ"));
        for bad in ["", "pass\nword", " padded", "nul\0"] {
            let e = secret("trunk.password", &Secret::new(bad)).unwrap_err();
            assert_eq!(e.value, crate::model::REDACTED);
            assert!(bad.is_empty() || !e.to_string().contains(bad));
        }
    }

    #[test]
    fn free_text_loses_syntax_and_control_characters_but_keeps_letters() {
        assert_eq!(free_text("Anna Müller"), "Anna Müller");
        assert_eq!(free_text("王小明"), "王小明");
        assert_eq!(free_text("O'Brien (HR)"), "O'Brien (HR)");
        assert_eq!(free_text("  Anna\r\n[evil]\ntype=endpoint  "), "Anna evil type endpoint");
        assert_eq!(free_text("a;b=c#include \"x\" <1> \\ , ${Y}"), "a b c include x 1 {Y}");
        assert_eq!(free_text("nul\0tab\tdel\u{7f}nel\u{85}ls\u{2028}"), "nul tab del nel ls");
        assert_eq!(free_text("bidi\u{202E}gnp.exe\u{200B}"), "bidi gnp.exe");
        assert_eq!(free_text(";;;"), "");
    }

    #[test]
    fn free_text_is_capped_on_a_char_boundary() {
        let long = "ü".repeat(200);
        let cut = free_text(&long);
        assert_eq!(cut.chars().count(), FREE_TEXT_MAX_CHARS);
        let words = "ab ".repeat(100);
        let cut = free_text(&words);
        assert!(cut.chars().count() <= FREE_TEXT_MAX_CHARS);
        assert!(!cut.ends_with(' '), "{cut:?}");
    }

    #[test]
    fn escape_keeps_lines_and_comments_intact() {
        assert_eq!(escape("alice-7f3a"), "alice-7f3a");
        assert_eq!(escape("a;b"), "a\\;b");
        assert_eq!(escape("a\nb\r\0c"), "a b  c");
        assert!(matches!(escape_cow("plain"), Cow::Borrowed(_)));
    }
}
