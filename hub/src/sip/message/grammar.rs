//! The small RFC 3261 grammar checks that `rsipstack`'s parser leaves out.
//!
//! `rsipstack` stores most header values as untyped strings and parses them lazily and
//! liberally, so a message it accepts can still be one RFC 4475 says must get a 400. Each
//! check here names the fixture that needed it. The checks only look at text; none of them
//! indexes with a length taken from the message.

use super::MessageError;

/// RFC 3261 §25.1 `token` characters: what a method, header name or parameter name may use.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// A non-empty RFC 3261 `token`.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// Splits `s` at every `sep` that is outside a quoted string and outside `<...>`.
///
/// Contact and Via are comma-separated lists, but commas may sit inside a quoted display
/// name or an angle-bracketed URI.
pub(super) fn split_outside(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    let mut angle = false;
    for (i, c) in s.char_indices() {
        if quoted {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '<' => angle = true,
            '>' => angle = false,
            c if c == sep && !angle => {
                parts.push(s.get(start..i).unwrap_or(""));
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(s.get(start..).unwrap_or(""));
    parts
}

/// Checks `*( SEMI generic-param )`: every parameter is `token [ EQUAL value ]`.
///
/// badinv01 needed it: `Contact: "Joe" <sip:joe@example.org>;;;;` and the Via's `;;`
/// are empty parameters, which rsipstack skips.
fn check_params(params: &str) -> Result<(), MessageError> {
    let params = params.trim();
    if params.is_empty() {
        return Ok(());
    }
    let Some(rest) = params.strip_prefix(';') else {
        return Err(MessageError::BadParameter);
    };
    for param in split_outside(rest, ';') {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (param.trim(), None),
        };
        if !is_token(name) {
            return Err(MessageError::BadParameter);
        }
        if let Some(value) = value {
            let ok = if let Some(q) = value.strip_prefix('"') {
                q.ends_with('"') && !q.is_empty()
            } else {
                // token or host (IPv6 references use `[`, `]` and `:`).
                !value.is_empty() && value.chars().all(|c| is_token_char(c) || "[]:".contains(c))
            };
            if !ok {
                return Err(MessageError::BadParameter);
            }
        }
    }
    Ok(())
}

/// Checks a URI's shape: `scheme ":" opaque`, no whitespace, no `<>`.
fn check_uri_shape(uri: &str) -> Result<(), MessageError> {
    if uri.is_empty() || uri.chars().any(|c| c.is_whitespace() || c == '<' || c == '>') {
        return Err(MessageError::BadUri);
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(MessageError::BadUri);
    };
    let mut chars = scheme.chars();
    let first_alpha = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_alpha || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) || rest.is_empty() {
        return Err(MessageError::BadUri);
    }
    Ok(())
}

/// The scheme of a URI, lower-cased, if it has one.
pub(super) fn scheme_of(uri: &str) -> Option<String> {
    uri.split_once(':').map(|(s, _)| s.to_ascii_lowercase())
}

/// Reads a quoted string at the start of `s`; returns the rest after the closing quote.
///
/// quotbal needed it: `To: "Mr. J. User <sip:j.user@example.com>` never closes its quote.
fn skip_quoted(s: &str) -> Result<&str, MessageError> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Ok(s.get(i + 1..).unwrap_or(""));
        }
    }
    Err(MessageError::UnterminatedQuote)
}

/// Checks one `(name-addr / addr-spec) *(SEMI param)` value of From, To or Contact.
///
/// Fixtures: quotbal (unterminated quote), baddn (unquoted display name with `,`),
/// badaspec (`< sip:... >`: whitespace inside the brackets), regbadct (an addr-spec with
/// `?headers` outside `<>`), badinv01 (empty `;` parameters). lwsdisp (no space before `<`)
/// must pass.
pub(super) fn check_address(value: &str) -> Result<(), MessageError> {
    let v = value.trim();
    let after_display = if v.starts_with('"') {
        let rest = skip_quoted(v)?.trim_start();
        if !rest.starts_with('<') {
            return Err(MessageError::BadAddress);
        }
        rest
    } else if let Some(lt) = v.find('<') {
        let display = v.get(..lt).unwrap_or("");
        if !display.split_whitespace().all(is_token) {
            return Err(MessageError::BadDisplayName);
        }
        v.get(lt..).unwrap_or("")
    } else {
        // addr-spec form: the URI ends at the first `;`, and it may not carry `?`, `,`
        // or `;` of its own (RFC 3261 §20).
        let (uri, params) = match v.find(';') {
            Some(i) => (v.get(..i).unwrap_or(""), v.get(i..).unwrap_or("")),
            None => (v, ""),
        };
        let uri = uri.trim();
        if uri.contains(['?', ',']) {
            return Err(MessageError::BadAddress);
        }
        check_uri_shape(uri)?;
        return check_params(params);
    };
    // name-addr: `<` addr-spec `>` then params.
    let inner_and_rest = after_display.strip_prefix('<').unwrap_or(after_display);
    let Some(gt) = inner_and_rest.find('>') else {
        return Err(MessageError::BadAddress);
    };
    let uri = inner_and_rest.get(..gt).unwrap_or("");
    check_uri_shape(uri)?;
    check_params(inner_and_rest.get(gt + 1..).unwrap_or(""))
}

/// Checks one Via value: `protocol-name / version / transport LWS sent-by *(SEMI param)`.
///
/// badinv01 needed it (`192.0.2.15;;,;,,`: empty parameters and empty values), and
/// badbranch (`branch=z9hG4bK`: the RFC 3261 magic cookie with no identifier).
pub(super) fn check_via(value: &str) -> Result<(), MessageError> {
    let (head, params) = match value.find(';') {
        Some(i) => (value.get(..i).unwrap_or(""), value.get(i..).unwrap_or("")),
        None => (value, ""),
    };
    // Remove the LWS the grammar allows around `/` (wsinv: `SIP  /   2.0 /UDP`).
    let mut compact = String::with_capacity(head.len());
    let mut pending_space = false;
    for c in head.trim().chars() {
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && c != '/' && !compact.ends_with('/') {
            compact.push(' ');
        }
        pending_space = false;
        compact.push(c);
    }
    let mut words = compact.split(' ');
    let (Some(protocol), Some(sent_by), None) = (words.next(), words.next(), words.next()) else {
        return Err(MessageError::BadVia);
    };
    let mut proto = protocol.split('/');
    let (Some(name), Some(version), Some(transport), None) = (proto.next(), proto.next(), proto.next(), proto.next())
    else {
        return Err(MessageError::BadVia);
    };
    if !is_token(name) || !is_token(version) || !is_token(transport) {
        return Err(MessageError::BadVia);
    }
    check_host_port(sent_by)?;
    check_params(params).map_err(|_| MessageError::BadVia)?;
    for param in split_outside(params.trim().trim_start_matches(';'), ';') {
        if let Some((name, branch)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("branch")
            && branch.trim() == "z9hG4bK"
        {
            return Err(MessageError::BareBranch);
        }
    }
    Ok(())
}

/// Checks `host [ ":" port ]` (a hostname, IPv4 address or `[IPv6]` reference).
fn check_host_port(s: &str) -> Result<(), MessageError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(MessageError::BadVia);
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(MessageError::BadVia);
        }
        ("v6", after.strip_prefix(':'))
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host_ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    let port_ok = port.is_none_or(|p| {
        !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok()
    });
    if host_ok && port_ok { Ok(()) } else { Err(MessageError::BadVia) }
}

/// Parses `CSeq: 1*DIGIT LWS Method`; the number must be below 2^31 (RFC 3261 §8.1.1.5).
///
/// scalar02 needed it: `CSeq: 36893488147419103232 INVITE`; wsinv has a folded
/// `0009\r\n  INVITE`.
pub(super) fn parse_cseq(value: &str) -> Result<(u32, &str), MessageError> {
    let mut words = value.split_whitespace();
    let (Some(number), Some(method), None) = (words.next(), words.next(), words.next()) else {
        return Err(MessageError::BadCSeq);
    };
    if !number.chars().all(|c| c.is_ascii_digit()) || !is_token(method) {
        return Err(MessageError::BadCSeq);
    }
    match number.parse::<u32>() {
        Ok(n) if n < (1 << 31) => Ok((n, method)),
        _ => Err(MessageError::BadCSeq),
    }
}

/// True when the header parameters of a From/To value hold a `tag`.
pub(super) fn has_tag(value: &str) -> bool {
    let v = value.trim();
    let params = if v.starts_with('"') {
        match skip_quoted(v) {
            Ok(rest) => rest.split_once('>').map_or("", |(_, p)| p),
            Err(_) => "",
        }
    } else if v.contains('<') {
        v.split_once('>').map_or("", |(_, p)| p)
    } else {
        v.split_once(';').map_or("", |(_, p)| p)
    };
    split_outside(params, ';')
        .iter()
        .any(|p| p.split_once('=').is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("tag")))
}
