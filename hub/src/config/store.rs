//! `[store]`: where the hub keeps its state.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConnectionUrl, Problem};

/// Storage location and backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// Directory for the hub's own state: the SQLite database, the generated TLS certificate,
    /// the cookie key and generated Asterisk config.
    pub data_dir: PathBuf,
    /// Database. Absent: SQLite at `<data_dir>/hub.db`. `sqlite:///path/to/file.db` for another
    /// SQLite file, `mongodb://user:pass@host/` (or `mongodb+srv://`) for MongoDB.
    pub url: Option<ConnectionUrl>,
    /// MongoDB database name.
    pub database: String,
    /// Connection pool size.
    pub max_connections: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { data_dir: PathBuf::from("data"), url: None, database: "hub".into(), max_connections: 8 }
    }
}

/// The backend a [`StoreConfig`] selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A MongoDB deployment: connection string and database name.
    Mongo {
        /// The `mongodb://` connection string (may hold a password).
        url: String,
        /// Database name.
        database: String,
    },
}

impl StoreConfig {
    /// Which backend to open.
    pub fn backend(&self) -> Backend {
        match self.url.as_ref().map(|u| u.expose()) {
            None => Backend::Sqlite(self.data_dir.join("hub.db")),
            Some(url) if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") => {
                Backend::Mongo { url: url.to_string(), database: self.database.clone() }
            }
            Some(url) => Backend::Sqlite(sqlite_path(url, &self.data_dir)),
        }
    }

    pub(super) fn check(&self, out: &mut Vec<Problem>) {
        if let Some(url) = &self.url {
            let u = url.expose();
            let known = ["sqlite://", "sqlite:", "mongodb://", "mongodb+srv://"];
            if !known.iter().any(|p| u.starts_with(p)) {
                out.push(Problem::new("store.url", format!("{url} is not a sqlite:// or mongodb:// URL")));
            }
        }
        if self.database.is_empty() || self.database.contains(['/', '.', ' ', '$']) {
            out.push(Problem::new("store.database", "must be a plain MongoDB database name"));
        }
        if self.max_connections == 0 {
            out.push(Problem::new("store.max_connections", "must be at least 1"));
        }
    }
}

fn sqlite_path(url: &str, data_dir: &Path) -> PathBuf {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let rest = rest.split('?').next().unwrap_or(rest);
    let p = PathBuf::from(rest);
    if p.is_absolute() { p } else { data_dir.join(p) }
}
