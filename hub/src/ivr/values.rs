//! Values crossing between Rust and scripts: JSON ↔ `Dynamic`, people and the caller as
//! object maps, and reading option maps (`#{ max_digits: 4 }`) with clear errors.

use rhai::{Array, Dynamic, EvalAltResult, Map};

use super::io::{CallerInfo, Person};

/// A script error with `message` (Rhai adds the position).
pub(crate) fn script_error(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(message.into().into(), rhai::Position::NONE))
}

/// JSON → a script value (objects become maps, arrays arrays, numbers `i64`/`f64`).
pub(crate) fn from_json(value: &serde_json::Value) -> Result<Dynamic, Box<EvalAltResult>> {
    rhai::serde::to_dynamic(value)
}

/// A script value → JSON (for `http_post` bodies).
pub(crate) fn to_json(value: &Dynamic) -> Result<serde_json::Value, Box<EvalAltResult>> {
    rhai::serde::from_dynamic(value)
}

/// `#{ id, name, extension, numbers }`; `extension` is `()` when the person has none.
pub(crate) fn person(p: &Person) -> Dynamic {
    let mut m = Map::new();
    m.insert("id".into(), p.id.clone().into());
    m.insert("name".into(), p.name.clone().into());
    m.insert("extension".into(), p.extension.clone().map_or(Dynamic::UNIT, Dynamic::from));
    m.insert("numbers".into(), p.numbers.iter().cloned().map(Dynamic::from).collect::<Array>().into());
    m.into()
}

/// `#{ number, name, path, dialled, headers }`.
pub(crate) fn caller(c: &CallerInfo) -> Dynamic {
    let mut m = Map::new();
    m.insert("number".into(), c.number.clone().into());
    m.insert("name".into(), c.name.clone().into());
    m.insert("path".into(), c.path.clone().into());
    m.insert("dialled".into(), c.dialled.clone().into());
    let headers: Map = c.headers.iter().map(|(k, v)| (k.as_str().into(), v.clone().into())).collect();
    m.insert("headers".into(), headers.into());
    m.into()
}

/// An options map a function reads, refusing keys it does not know (a typo would otherwise
/// be silently ignored).
pub(crate) struct Options<'a> {
    function: &'static str,
    map: &'a Map,
}

impl<'a> Options<'a> {
    /// Checks that `map` only has `known` keys.
    pub(crate) fn new(function: &'static str, map: &'a Map, known: &[&str]) -> Result<Self, Box<EvalAltResult>> {
        if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(script_error(format!("{function}: unknown option {k:?} (known: {})", known.join(", "))));
        }
        Ok(Self { function, map })
    }

    /// A non-negative integer option.
    pub(crate) fn int(&self, key: &str, default: u64) -> Result<u64, Box<EvalAltResult>> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_int()
                .ok()
                .and_then(|i| u64::try_from(i).ok())
                .ok_or_else(|| script_error(format!("{}: {key} must be a number ≥ 0", self.function))),
        }
    }

    /// A boolean option.
    pub(crate) fn bool(&self, key: &str, default: bool) -> Result<bool, Box<EvalAltResult>> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().map_err(|_| script_error(format!("{}: {key} must be true or false", self.function))),
        }
    }

    /// A string option; `()` counts as absent.
    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, Box<EvalAltResult>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) if v.is_unit() => Ok(None),
            Some(v) => v
                .clone()
                .into_string()
                .map(Some)
                .map_err(|_| script_error(format!("{}: {key} must be a string", self.function))),
        }
    }
}

/// The digits a name spells on a phone keypad (2 = ABC … 9 = WXYZ); other characters drop.
pub(crate) fn keypad(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c.to_ascii_lowercase() {
            'a'..='c' => Some('2'),
            'd'..='f' => Some('3'),
            'g'..='i' => Some('4'),
            'j'..='l' => Some('5'),
            'm'..='o' => Some('6'),
            'p'..='s' => Some('7'),
            't'..='v' => Some('8'),
            'w'..='z' => Some('9'),
            _ => None,
        })
        .collect()
}

/// The letters of a keypad digit.
pub(crate) fn letters(digit: char) -> &'static str {
    match digit {
        '2' => "abc",
        '3' => "def",
        '4' => "ghi",
        '5' => "jkl",
        '6' => "mno",
        '7' => "pqrs",
        '8' => "tuv",
        '9' => "wxyz",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_script_values() {
        let v = serde_json::json!({ "open": true, "n": 3, "f": 1.5, "list": ["a", null], "o": { "x": "y" } });
        assert_eq!(to_json(&from_json(&v).unwrap()).unwrap(), v);
    }

    #[test]
    fn names_spell_on_the_keypad() {
        assert_eq!(keypad("Alice Liddell"), "254235433355");
        assert_eq!(letters('7'), "pqrs");
    }
}
