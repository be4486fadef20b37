//! The loader: defaults ← file ← environment ← flags, with an origin kept for every key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::error::Invalid;
use super::{Config, ConfigError, DEFAULT_FILE, Loaded, Origin, Sources};

/// `HUB_*` variables that are not config keys: the config path itself and the test suite's.
fn is_reserved_env(name: &str) -> bool {
    name == "HUB_CONFIG" || name.starts_with("HUB_TEST_")
}

pub(super) fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let (file, text) = read_file(sources.file.as_deref())?;
    let mut origins = Origins::default();
    let mut table = match (&file, &text) {
        (Some(path), Some(text)) => parse_file(path, text, &mut origins)?,
        _ => Table::new(),
    };
    let defaults = Value::try_from(Config::default()).unwrap_or(Value::Table(Table::new()));
    let mut warnings = Vec::new();
    let mut invalid = Vec::new();

    let mut env: Vec<&(String, String)> = sources.env.iter().filter(|(k, _)| k.starts_with("HUB_")).collect();
    env.sort();
    for (name, raw) in env {
        if is_reserved_env(name) {
            continue;
        }
        let Some(path) = env_key(name) else {
            warnings.push(format!("unknown environment variable {name} (config variables are named HUB_SECTION__KEY)"));
            continue;
        };
        let origin = Origin::Env(name.clone());
        apply(&mut table, &defaults, &path, raw, origin, &mut origins, &mut invalid);
    }
    for flag in &sources.flags {
        let path: Vec<String> = flag.key.split('.').map(str::to_string).collect();
        apply(&mut table, &defaults, &path, &flag.value, Origin::Flag(flag.flag), &mut origins, &mut invalid);
    }
    if !invalid.is_empty() {
        return Err(ConfigError::Invalid(invalid));
    }

    let mut ignored: Vec<String> = Vec::new();
    let mut on_ignored = |path: serde_ignored::Path<'_>| ignored.push(path.to_string());
    let de = serde_ignored::Deserializer::new(Value::Table(table), &mut on_ignored);
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let message = e.into_inner().message().to_string();
        ConfigError::Invalid(vec![Invalid { origin: origins.find(&key), key, message }])
    })?;

    for key in ignored {
        warnings.push(match origins.find(&key) {
            Origin::Env(var) => format!("unknown environment variable {var} (no config key {key})"),
            Origin::Flag(flag) => format!("flag {flag} sets unknown key {key}"),
            origin => format!("{origin}: unknown config key {key} (ignored)"),
        });
    }

    let problems: Vec<Invalid> = config
        .problems()
        .into_iter()
        .map(|p| Invalid { origin: origins.find(&p.key), key: p.key, message: p.message })
        .collect();
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    Ok(Loaded { config, file, warnings })
}

fn read_file(explicit: Option<&Path>) -> Result<(Option<PathBuf>, Option<String>), ConfigError> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = PathBuf::from(DEFAULT_FILE);
            if !p.exists() {
                return Ok((None, None));
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
    Ok((Some(path), Some(text)))
}

/// Parses the file, recording the line of every key.
fn parse_file(path: &Path, text: &str, origins: &mut Origins) -> Result<Table, ConfigError> {
    let syntax = |e: toml::de::Error| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        ConfigError::Syntax { path: path.to_path_buf(), line, column, message: e.message().trim().to_string() }
    };
    let spanned = toml::de::DeTable::parse(text).map_err(syntax)?;
    let mut lines = BTreeMap::new();
    record_lines(text, spanned.get_ref(), "", &mut lines);
    origins.file = Some(path.to_path_buf());
    origins.lines = lines;
    toml::from_str::<Table>(text).map_err(syntax)
}

fn record_lines(text: &str, table: &toml::de::DeTable<'_>, prefix: &str, out: &mut BTreeMap<String, usize>) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() { key.get_ref().to_string() } else { format!("{prefix}.{}", key.get_ref()) };
        out.entry(path.clone()).or_insert_with(|| line_col(text, key.span().start).0);
        if let toml::de::DeValue::Table(inner) = value.get_ref() {
            record_lines(text, inner, &path, out);
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `HUB_WEB__TLS_CERT` → `["web", "tls_cert"]`.
fn env_key(name: &str) -> Option<Vec<String>> {
    let rest = name.strip_prefix("HUB_")?;
    if !rest.contains("__") {
        return None;
    }
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    path.iter().all(|s| !s.is_empty()).then_some(path)
}

/// Sets `path` in `table` to `raw`, typed like the default at that path.
fn apply(
    table: &mut Table,
    defaults: &Value,
    path: &[String],
    raw: &str,
    origin: Origin,
    origins: &mut Origins,
    invalid: &mut Vec<Invalid>,
) {
    let key = path.join(".");
    let value = match typed(lookup(defaults, path), raw) {
        Ok(v) => v,
        Err(message) => {
            invalid.push(Invalid { origin, key, message });
            return;
        }
    };
    let (last, parents) = path.split_last().expect("env_key never yields an empty path");
    let mut cur = table;
    for part in parents {
        let entry = cur.entry(part.clone()).or_insert_with(|| Value::Table(Table::new()));
        match entry {
            Value::Table(t) => cur = t,
            _ => {
                invalid.push(Invalid { origin, key, message: format!("{part} is not a section") });
                return;
            }
        }
    }
    cur.insert(last.clone(), value);
    origins.set.insert(key, origin);
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, part| v.as_table()?.get(part))
}

/// Interprets an environment or flag string as the type the key's default has; keys without
/// a default (optional values) are strings.
fn typed(default: Option<&Value>, raw: &str) -> Result<Value, String> {
    let raw_t = raw.trim();
    match default {
        Some(Value::Integer(_)) => {
            raw_t.parse::<i64>().map(Value::Integer).map_err(|_| format!("expected an integer, got {raw:?}"))
        }
        Some(Value::Float(_)) => {
            raw_t.parse::<f64>().map(Value::Float).map_err(|_| format!("expected a number, got {raw:?}"))
        }
        Some(Value::Boolean(_)) => match raw_t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        Some(Value::Array(_)) if raw_t.starts_with('[') => toml::from_str::<Table>(&format!("v = {raw_t}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .ok_or_else(|| format!("expected a TOML array like [\"a\", \"b\"], got {raw:?}")),
        Some(Value::Array(_)) => Ok(Value::Array(
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.into())).collect(),
        )),
        Some(Value::Table(_)) => Err("this key is a section; set its keys one by one".into()),
        _ => Ok(Value::String(raw.to_string())),
    }
}

/// Where each key's value came from.
#[derive(Default)]
struct Origins {
    file: Option<PathBuf>,
    lines: BTreeMap<String, usize>,
    set: BTreeMap<String, Origin>,
}

impl Origins {
    /// The origin of `key`, or of its closest ancestor that has one.
    fn find(&self, key: &str) -> Origin {
        let mut k = key;
        loop {
            if let Some(o) = self.set.get(k) {
                return o.clone();
            }
            if let (Some(path), Some(line)) = (&self.file, self.lines.get(k)) {
                return Origin::File { path: path.clone(), line: Some(*line) };
            }
            match k.rfind(['.', '[']) {
                Some(i) => k = &k[..i],
                None => break,
            }
        }
        Origin::Default
    }
}
