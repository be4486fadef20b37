//! The embedded default backend: one SQLite file in WAL mode, schema migrations built into
//! the binary and applied at open, foreign keys on.
//!
//! Writes that touch several tables run in `BEGIN IMMEDIATE` transactions: they take the
//! write lock up front and wait for it (busy timeout) instead of failing half-way when
//! another writer got there first.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{
    AuditStore, CallLogStore, DirectoryStore, MailboxStore, ProvisioningStore, Result, SessionStore, SipAccountStore,
    Store, StoreError, Unique, UserQuery,
};
use crate::model::{
    AuditEntry, CallRecord, Extension, MailboxMessage, MessageId, NewAuditEntry, NewMailboxMessage, NewUser, Number,
    NumberSource, ProvisionRecord, RecordId, ReloadRecord, Secret, Session, SessionId, SipAccount, Timestamp, User,
    UserId, UserUpdate, search_tokens,
};

/// The columns of a user with its numbers (as a JSON array of `[source, number, kind]`).
macro_rules! user_columns {
    () => {
        concat!(
            "u.id, u.subject, u.username, u.display_name, u.email, u.extension, u.disabled, u.admin, ",
            "u.created_at, u.updated_at, ",
            "(SELECT json_group_array(json_array(n.source, n.number, n.kind) ORDER BY n.source, n.position) ",
            "FROM numbers n WHERE n.user_id = u.id) AS numbers"
        )
    };
}

/// Selects users with their numbers; `$tail` adds the conditions.
macro_rules! user_select {
    ($tail:literal) => {
        concat!("SELECT ", user_columns!(), " FROM users u ", $tail)
    };
}

/// SQLite-backed [`Store`].
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies migrations.
    pub async fn open(path: &Path, max_connections: u32) -> Result<Self> {
        let open_err = |reason: String| StoreError::Open { location: path.display().to_string(), reason };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| open_err(format!("cannot create {}: {e}", parent.display())))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Reads (directory search, session checks) come from memory-mapped pages rather
            // than a copy through SQLite's small default page cache.
            .pragma("mmap_size", "268435456")
            .pragma("cache_size", "-16384");
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .min_connections(1)
            // A local file does not drop connections: pinging before every use would double
            // the cost of the session check every request makes.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        sqlx::migrate!("./migrations").run(&pool).await.map_err(|e| open_err(format!("migration failed: {e}")))?;
        Ok(Self { pool })
    }

    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)
    }

    async fn fetch_user(&self, sql: &'static str, key: &str) -> Result<Option<User>> {
        let row = sqlx::query(sql).bind(key).fetch_optional(&self.pool).await.map_err(db_err)?;
        row.map(|r| user_from_row(&r)).transpose()
    }
}

/// Turns a database error into a [`StoreError`], recognising unique-constraint violations.
fn db_err(e: sqlx::Error) -> StoreError {
    if let Some(db) = e.as_database_error()
        && db.is_unique_violation()
    {
        let msg = db.message();
        let what = if msg.contains("users.extension") {
            Unique::Extension
        } else if msg.contains("users.subject") {
            Unique::Subject
        } else if msg.contains("users.username") {
            Unique::Username
        } else if msg.contains("sip_accounts.username") {
            Unique::SipUsername
        } else {
            Unique::Id
        };
        return StoreError::Conflict { what, value: String::new() };
    }
    StoreError::Backend(e.to_string())
}

fn corrupt(what: &'static str) -> impl Fn(String) -> StoreError {
    move |reason| StoreError::Corrupt { what, reason }
}

fn parse_field<T: FromStr>(what: &'static str, s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| StoreError::Corrupt { what, reason: e.to_string() })
}

fn user_from_row(row: &SqliteRow) -> Result<User> {
    let get = |e: sqlx::Error| StoreError::Corrupt { what: "user", reason: e.to_string() };
    let extension: Option<String> = row.try_get("extension").map_err(get)?;
    let numbers_json: Option<String> = row.try_get("numbers").map_err(get)?;
    let mut numbers = Vec::new();
    if let Some(json) = numbers_json {
        let triples: Vec<(String, String, String)> =
            serde_json::from_str(&json).map_err(|e| corrupt("number")(e.to_string()))?;
        for (source, number, kind) in triples {
            numbers.push(Number {
                number,
                kind: parse_field("number", &kind)?,
                source: parse_field("number", &source)?,
            });
        }
    }
    Ok(User {
        id: UserId::from_string(row.try_get::<String, _>("id").map_err(get)?),
        subject: row.try_get("subject").map_err(get)?,
        username: row.try_get("username").map_err(get)?,
        display_name: row.try_get("display_name").map_err(get)?,
        email: row.try_get("email").map_err(get)?,
        extension: extension.map(Extension::new).transpose().map_err(|e| corrupt("user")(e.to_string()))?,
        disabled: row.try_get("disabled").map_err(get)?,
        admin: row.try_get("admin").map_err(get)?,
        numbers,
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(get)?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at").map_err(get)?),
    })
}

/// Rewrites the user's search tokens; `fresh` (a user just created) skips deleting old ones.
async fn write_tokens(conn: &mut SqliteConnection, id: &UserId, user: &User, fresh: bool) -> Result<()> {
    if !fresh {
        sqlx::query("DELETE FROM user_tokens WHERE user_id = ?")
            .bind(id.as_str())
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    let tokens = search_tokens(&user.display_name, &user.username, user.email.as_deref());
    // One statement for all tokens: each statement is a round trip to SQLite's worker thread.
    sqlx::query("INSERT INTO user_tokens (token, user_id) SELECT value, ?2 FROM json_each(?1)")
        .bind(serde_json::Value::from(tokens).to_string())
        .bind(id.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Replaces the user's numbers of one source; `fresh` skips deleting old ones.
async fn write_numbers(
    conn: &mut SqliteConnection,
    id: &UserId,
    source: NumberSource,
    numbers: &[Number],
    fresh: bool,
) -> Result<()> {
    if !fresh {
        sqlx::query("DELETE FROM numbers WHERE user_id = ? AND source = ?")
            .bind(id.as_str())
            .bind(source.as_str())
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    if numbers.is_empty() {
        return Ok(());
    }
    let rows: Vec<(&str, &str)> = numbers.iter().map(|n| (n.number.as_str(), n.kind.as_str())).collect();
    let json = serde_json::to_string(&rows).map_err(|e| StoreError::Backend(e.to_string()))?;
    // The primary key drops repeated numbers (first one kept); `key` is the list position.
    sqlx::query(
        "INSERT OR IGNORE INTO numbers (user_id, source, number, kind, position) \
         SELECT ?1, ?2, json_extract(value, '$[0]'), json_extract(value, '$[1]'), key FROM json_each(?3)",
    )
    .bind(id.as_str())
    .bind(source.as_str())
    .bind(json)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Numbers as every backend returns them: grouped by source name, in the given order
/// within a source, without repeats.
fn normalised_numbers(numbers: &[Number]) -> Vec<Number> {
    let mut out: Vec<Number> = Vec::with_capacity(numbers.len());
    for n in numbers {
        if !out.iter().any(|o| o.source == n.source && o.number == n.number) {
            out.push(n.clone());
        }
    }
    out.sort_by_key(|n| n.source.as_str());
    out
}

async fn user_in(conn: &mut SqliteConnection, id: &UserId) -> Result<User> {
    let row = sqlx::query(user_select!("WHERE u.id = ?"))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
    user_from_row(&row)
}

/// Groups numbers by source, keeping their order.
fn numbers_by_source(numbers: &[Number]) -> Vec<(NumberSource, Vec<Number>)> {
    let mut out: Vec<(NumberSource, Vec<Number>)> = Vec::new();
    for n in numbers {
        match out.iter_mut().find(|(s, _)| *s == n.source) {
            Some((_, list)) => list.push(n.clone()),
            None => out.push((n.source, vec![n.clone()])),
        }
    }
    out
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn create_user(&self, new: NewUser) -> Result<User> {
        let now = Timestamp::now();
        let user = User {
            id: UserId::generate(),
            subject: new.subject,
            username: new.username,
            display_name: new.display_name,
            email: new.email,
            extension: new.extension,
            disabled: false,
            admin: new.admin,
            numbers: new.numbers,
            created_at: now,
            updated_at: now,
        };
        let conflict_value = |what: Unique| match what {
            Unique::Username => Some(user.username.clone()),
            Unique::Subject => user.subject.clone(),
            Unique::Extension => user.extension.as_ref().map(ToString::to_string),
            _ => None,
        };
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO users (id, subject, username, display_name, sort_key, email, extension, disabled, admin, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
        )
        .bind(user.id.as_str())
        .bind(&user.subject)
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(user.display_name.to_lowercase())
        .bind(&user.email)
        .bind(user.extension.as_ref().map(Extension::as_str))
        .bind(user.admin)
        .bind(now.as_millis())
        .bind(now.as_millis())
        .execute(&mut *tx)
        .await
        .map_err(|e| db_err(e).with_value(conflict_value))?;
        write_tokens(&mut tx, &user.id, &user, true).await?;
        for (source, numbers) in numbers_by_source(&user.numbers) {
            write_numbers(&mut tx, &user.id, source, &numbers, true).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(User { numbers: normalised_numbers(&user.numbers), ..user })
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>> {
        self.fetch_user(user_select!("WHERE u.id = ?"), id.as_str()).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        self.fetch_user(user_select!("WHERE u.username = ?"), username).await
    }

    async fn user_by_subject(&self, subject: &str) -> Result<Option<User>> {
        self.fetch_user(user_select!("WHERE u.subject = ?"), subject).await
    }

    async fn user_by_extension(&self, extension: &Extension) -> Result<Option<User>> {
        self.fetch_user(user_select!("WHERE u.extension = ?"), extension.as_str()).await
    }

    async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>> {
        let limit = query.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let rows = match query.name_prefix.as_deref().map(|p| p.trim().to_lowercase()) {
            Some(prefix) if !prefix.is_empty() => {
                let upper = format!("{prefix}\u{10FFFF}");
                sqlx::query(user_select!(
                    "WHERE u.id IN (SELECT user_id FROM user_tokens WHERE token >= ?1 AND token < ?2) \
                     AND (?3 OR u.disabled = 0) ORDER BY u.sort_key, u.id LIMIT ?4"
                ))
                .bind(prefix)
                .bind(upper)
                .bind(query.include_disabled)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
            _ => {
                sqlx::query(user_select!("WHERE (?1 OR u.disabled = 0) ORDER BY u.sort_key, u.id LIMIT ?2"))
                    .bind(query.include_disabled)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn update_user(&self, id: &UserId, update: &UserUpdate) -> Result<User> {
        let mut tx = self.write_tx().await?;
        let mut user = user_in(&mut tx, id).await?;
        if let Some(subject) = &update.subject {
            user.subject = Some(subject.clone());
        }
        if let Some(name) = &update.display_name {
            user.display_name = name.clone();
        }
        if let Some(email) = &update.email {
            user.email = email.clone();
        }
        if let Some(ext) = &update.extension {
            user.extension = ext.clone();
        }
        if let Some(admin) = update.admin {
            user.admin = admin;
        }
        if let Some(disabled) = update.disabled {
            user.disabled = disabled;
        }
        let now = Timestamp::now().max(user.updated_at);
        let ext = user.extension.as_ref().map(ToString::to_string);
        sqlx::query(
            "UPDATE users SET subject = ?, display_name = ?, sort_key = ?, email = ?, extension = ?, admin = ?, \
             disabled = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&user.subject)
        .bind(&user.display_name)
        .bind(user.display_name.to_lowercase())
        .bind(&user.email)
        .bind(&ext)
        .bind(user.admin)
        .bind(user.disabled)
        .bind(now.as_millis())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            db_err(e).with_value(|w| match w {
                Unique::Extension => ext.clone(),
                Unique::Subject => user.subject.clone(),
                _ => None,
            })
        })?;
        if update.display_name.is_some() || update.email.is_some() {
            write_tokens(&mut tx, id, &user, false).await?;
        }
        let stored = user_in(&mut tx, id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(stored)
    }

    async fn set_numbers(&self, id: &UserId, source: NumberSource, numbers: &[Number]) -> Result<User> {
        let mut tx = self.write_tx().await?;
        user_in(&mut tx, id).await?;
        let numbers: Vec<Number> = numbers.iter().map(|n| Number { source, ..n.clone() }).collect();
        write_numbers(&mut tx, id, source, &numbers, false).await?;
        sqlx::query("UPDATE users SET updated_at = MAX(updated_at, ?) WHERE id = ?")
            .bind(Timestamp::now().as_millis())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let stored = user_in(&mut tx, id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(stored)
    }

    async fn extensions_in_range(&self, first: u32, last: u32) -> Result<Vec<u32>> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT CAST(extension AS INTEGER) AS e FROM users WHERE extension IS NOT NULL \
             AND CAST(extension AS INTEGER) BETWEEN ? AND ? ORDER BY e",
        )
        .bind(i64::from(first))
        .bind(i64::from(last))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().filter_map(|(e,)| u32::try_from(e).ok()).collect())
    }

    async fn count_users(&self) -> Result<u64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await.map_err(db_err)?;
        Ok(n.max(0) as u64)
    }
}

fn session_from_row(row: &SqliteRow) -> Result<Session> {
    let get = |e: sqlx::Error| StoreError::Corrupt { what: "session", reason: e.to_string() };
    Ok(Session {
        id: SessionId::from_string(row.try_get::<String, _>("id").map_err(get)?),
        user_id: UserId::from_string(row.try_get::<String, _>("user_id").map_err(get)?),
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(get)?),
        expires_at: Timestamp::from_millis(row.try_get("expires_at").map_err(get)?),
        user_agent: row.try_get("user_agent").map_err(get)?,
        ip: row.try_get("ip").map_err(get)?,
    })
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, s: &Session) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, user_agent, ip) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(s.id.as_str())
        .bind(s.user_id.as_str())
        .bind(s.created_at.as_millis())
        .bind(s.expires_at.as_millis())
        .bind(&s.user_agent)
        .bind(&s.ip)
        .execute(&self.pool)
        .await
        .map_err(|e| match e.as_database_error() {
            Some(d) if d.is_foreign_key_violation() => StoreError::NotFound(format!("user {}", s.user_id)),
            _ => db_err(e),
        })?;
        Ok(())
    }

    async fn session(&self, id: &SessionId) -> Result<Option<Session>> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| session_from_row(&r)).transpose()
    }

    async fn session_with_user(&self, id: &SessionId) -> Result<Option<(Session, User)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", s.id AS s_id, s.user_id AS s_user_id, s.created_at AS s_created_at, s.expires_at AS s_expires_at, ",
            "s.user_agent AS s_user_agent, s.ip AS s_ip FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let get = |e: sqlx::Error| StoreError::Corrupt { what: "session", reason: e.to_string() };
        let session = Session {
            id: SessionId::from_string(row.try_get::<String, _>("s_id").map_err(get)?),
            user_id: UserId::from_string(row.try_get::<String, _>("s_user_id").map_err(get)?),
            created_at: Timestamp::from_millis(row.try_get("s_created_at").map_err(get)?),
            expires_at: Timestamp::from_millis(row.try_get("s_expires_at").map_err(get)?),
            user_agent: row.try_get("s_user_agent").map_err(get)?,
            ip: row.try_get("s_ip").map_err(get)?,
        };
        Ok(Some((session, user_from_row(&row)?)))
    }

    async fn sessions_of(&self, user: &UserId) -> Result<Vec<Session>> {
        let rows = sqlx::query("SELECT * FROM sessions WHERE user_id = ? ORDER BY created_at, id")
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn delete_session(&self, id: &SessionId) -> Result<bool> {
        let r = sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_sessions_of(&self, user: &UserId) -> Result<u64> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(user.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected())
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        let r = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected())
    }
}

fn sip_from_row(row: &SqliteRow) -> Result<SipAccount> {
    let get = |e: sqlx::Error| StoreError::Corrupt { what: "sip account", reason: e.to_string() };
    Ok(SipAccount {
        user_id: UserId::from_string(row.try_get::<String, _>("user_id").map_err(get)?),
        username: row.try_get("username").map_err(get)?,
        secret: Secret::new(row.try_get::<String, _>("secret").map_err(get)?),
        rotated_at: Timestamp::from_millis(row.try_get("rotated_at").map_err(get)?),
    })
}

#[async_trait]
impl SipAccountStore for SqliteStore {
    async fn put_sip_account(&self, a: &SipAccount) -> Result<()> {
        sqlx::query(
            "INSERT INTO sip_accounts (user_id, username, secret, rotated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id) DO UPDATE SET username = excluded.username, secret = excluded.secret, \
             rotated_at = excluded.rotated_at",
        )
        .bind(a.user_id.as_str())
        .bind(&a.username)
        .bind(a.secret.expose())
        .bind(a.rotated_at.as_millis())
        .execute(&self.pool)
        .await
        .map_err(|e| match e.as_database_error() {
            Some(d) if d.is_foreign_key_violation() => StoreError::NotFound(format!("user {}", a.user_id)),
            _ => db_err(e).with_value(|_| Some(a.username.clone())),
        })?;
        Ok(())
    }

    async fn put_sip_accounts(&self, accounts: &[SipAccount]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        // One statement per chunk: each statement is a round trip to SQLite's worker thread.
        for chunk in accounts.chunks(BATCH_ROWS) {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|a| {
                    serde_json::json!([a.user_id.as_str(), a.username, a.secret.expose(), a.rotated_at.as_millis()])
                })
                .collect();
            sqlx::query(
                "INSERT INTO sip_accounts (user_id, username, secret, rotated_at) \
                 SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
                 json_extract(value, '$[3]') FROM json_each(?1) WHERE true \
                 ON CONFLICT (user_id) DO UPDATE SET username = excluded.username, secret = excluded.secret, \
                 rotated_at = excluded.rotated_at",
            )
            .bind(serde_json::Value::from(rows).to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| match e.as_database_error() {
                Some(d) if d.is_foreign_key_violation() => {
                    StoreError::NotFound(format!("a user among {} accounts", chunk.len()))
                }
                // SQLite does not say which row clashed: name it when the chunk has one.
                _ => db_err(e).with_value(|what| match (what, chunk) {
                    (Unique::SipUsername, [only]) => Some(only.username.clone()),
                    _ => None,
                }),
            })?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn sip_account(&self, user: &UserId) -> Result<Option<SipAccount>> {
        let row = sqlx::query("SELECT * FROM sip_accounts WHERE user_id = ?")
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| sip_from_row(&r)).transpose()
    }

    async fn sip_account_by_username(&self, username: &str) -> Result<Option<SipAccount>> {
        let row = sqlx::query("SELECT * FROM sip_accounts WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| sip_from_row(&r)).transpose()
    }

    async fn sip_accounts(&self) -> Result<Vec<SipAccount>> {
        let rows =
            sqlx::query("SELECT * FROM sip_accounts ORDER BY username").fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(sip_from_row).collect()
    }

    async fn delete_sip_account(&self, user: &UserId) -> Result<bool> {
        let r = sqlx::query("DELETE FROM sip_accounts WHERE user_id = ?")
            .bind(user.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected() > 0)
    }
}

/// Rows written by one multi-row statement (a JSON array bound as one parameter).
const BATCH_ROWS: usize = 1000;

fn provision_from_row(row: &SqliteRow) -> Result<ProvisionRecord> {
    let get = |e: sqlx::Error| StoreError::Corrupt { what: "provisioning record", reason: e.to_string() };
    let status: String = row.try_get("status").map_err(get)?;
    Ok(ProvisionRecord {
        user_id: UserId::from_string(row.try_get::<String, _>("user_id").map_err(get)?),
        endpoint: row.try_get("endpoint").map_err(get)?,
        desired: row.try_get("desired").map_err(get)?,
        applied: row.try_get("applied").map_err(get)?,
        status: status.parse().map_err(|e: String| StoreError::Corrupt { what: "provisioning record", reason: e })?,
        detail: row.try_get("detail").map_err(get)?,
        updated_at: Timestamp::from_millis(row.try_get("updated_at").map_err(get)?),
    })
}

#[async_trait]
impl ProvisioningStore for SqliteStore {
    async fn provision_records(&self) -> Result<Vec<ProvisionRecord>> {
        let rows =
            sqlx::query("SELECT * FROM provisioning ORDER BY endpoint").fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(provision_from_row).collect()
    }

    async fn put_provision_records(&self, records: &[ProvisionRecord]) -> Result<()> {
        let mut tx = self.write_tx().await?;
        for chunk in records.chunks(BATCH_ROWS) {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|r| {
                    serde_json::json!([
                        r.user_id.as_str(),
                        r.endpoint,
                        r.desired,
                        r.applied,
                        r.status.as_str(),
                        r.detail,
                        r.updated_at.as_millis()
                    ])
                })
                .collect();
            sqlx::query(
                "INSERT INTO provisioning (user_id, endpoint, desired, applied, status, detail, updated_at) \
                 SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
                 json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
                 json_extract(value, '$[6]') FROM json_each(?1) WHERE true \
                 ON CONFLICT (user_id) DO UPDATE SET endpoint = excluded.endpoint, \
                 desired = excluded.desired, applied = excluded.applied, status = excluded.status, \
                 detail = excluded.detail, updated_at = excluded.updated_at",
            )
            .bind(serde_json::Value::from(rows).to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| match e.as_database_error() {
                Some(d) if d.is_foreign_key_violation() => {
                    StoreError::NotFound(format!("a user among {} provisioning records", chunk.len()))
                }
                _ => db_err(e),
            })?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn last_reload(&self) -> Result<Option<ReloadRecord>> {
        let row =
            sqlx::query("SELECT * FROM pbx_reload WHERE id = 1").fetch_optional(&self.pool).await.map_err(db_err)?;
        let get = |e: sqlx::Error| StoreError::Corrupt { what: "reload record", reason: e.to_string() };
        row.map(|r| {
            Ok(ReloadRecord {
                at: Timestamp::from_millis(r.try_get("at").map_err(get)?),
                ok: r.try_get("ok").map_err(get)?,
                detail: r.try_get("detail").map_err(get)?,
                changed: r.try_get::<i64, _>("changed").map_err(get)?.clamp(0, i64::from(u32::MAX)) as u32,
                duration_ms: r.try_get::<i64, _>("duration_ms").map_err(get)?.max(0) as u64,
            })
        })
        .transpose()
    }

    async fn put_reload(&self, r: &ReloadRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO pbx_reload (id, at, ok, detail, changed, duration_ms) VALUES (1, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET at = excluded.at, ok = excluded.ok, detail = excluded.detail, \
             changed = excluded.changed, duration_ms = excluded.duration_ms",
        )
        .bind(r.at.as_millis())
        .bind(r.ok)
        .bind(&r.detail)
        .bind(i64::from(r.changed))
        .bind(i64::try_from(r.duration_ms).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

fn message_from_row(row: &SqliteRow) -> Result<MailboxMessage> {
    let get = |e: sqlx::Error| StoreError::Corrupt { what: "mailbox message", reason: e.to_string() };
    Ok(MailboxMessage {
        id: MessageId::from_string(row.try_get::<String, _>("id").map_err(get)?),
        owner: UserId::from_string(row.try_get::<String, _>("owner").map_err(get)?),
        from: row.try_get("sender").map_err(get)?,
        created_at: Timestamp::from_millis(row.try_get("created_at").map_err(get)?),
        duration_ms: row.try_get::<i64, _>("duration_ms").map_err(get)?.max(0) as u64,
        media_type: row.try_get("media_type").map_err(get)?,
        path: row.try_get("path").map_err(get)?,
        read: row.try_get("read").map_err(get)?,
        deleted_at: row.try_get::<Option<i64>, _>("deleted_at").map_err(get)?.map(Timestamp::from_millis),
    })
}

#[async_trait]
impl MailboxStore for SqliteStore {
    async fn add_message(&self, m: NewMailboxMessage) -> Result<MailboxMessage> {
        let message = MailboxMessage {
            id: MessageId::generate(),
            owner: m.owner,
            from: m.from,
            created_at: Timestamp::now(),
            duration_ms: m.duration_ms,
            media_type: m.media_type,
            path: m.path,
            read: false,
            deleted_at: None,
        };
        sqlx::query(
            "INSERT INTO mailbox_messages (id, owner, sender, created_at, duration_ms, media_type, path, read) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        )
        .bind(message.id.as_str())
        .bind(message.owner.as_str())
        .bind(&message.from)
        .bind(message.created_at.as_millis())
        .bind(i64::try_from(message.duration_ms).unwrap_or(i64::MAX))
        .bind(&message.media_type)
        .bind(&message.path)
        .execute(&self.pool)
        .await
        .map_err(|e| match e.as_database_error() {
            Some(d) if d.is_foreign_key_violation() => StoreError::NotFound(format!("user {}", message.owner)),
            _ => db_err(e),
        })?;
        Ok(message)
    }

    async fn message(&self, id: &MessageId) -> Result<Option<MailboxMessage>> {
        let row = sqlx::query("SELECT * FROM mailbox_messages WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| message_from_row(&r)).transpose()
    }

    async fn messages(&self, owner: &UserId, trashed: bool) -> Result<Vec<MailboxMessage>> {
        let rows = sqlx::query(
            "SELECT * FROM mailbox_messages WHERE owner = ? AND (deleted_at IS NOT NULL) = ? \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(owner.as_str())
        .bind(trashed)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(message_from_row).collect()
    }

    async fn set_read(&self, id: &MessageId, read: bool) -> Result<bool> {
        let r = sqlx::query("UPDATE mailbox_messages SET read = ? WHERE id = ?")
            .bind(read)
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected() > 0)
    }

    async fn set_trashed(&self, id: &MessageId, at: Option<Timestamp>) -> Result<bool> {
        let r = sqlx::query("UPDATE mailbox_messages SET deleted_at = ? WHERE id = ?")
            .bind(at.map(Timestamp::as_millis))
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_message(&self, id: &MessageId) -> Result<bool> {
        let r = sqlx::query("DELETE FROM mailbox_messages WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected() > 0)
    }

    async fn trashed_before(&self, before: Timestamp) -> Result<Vec<MailboxMessage>> {
        let rows = sqlx::query(
            "SELECT * FROM mailbox_messages WHERE deleted_at IS NOT NULL AND deleted_at < ? ORDER BY deleted_at",
        )
        .bind(before.as_millis())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(message_from_row).collect()
    }

    async fn unread_count(&self, owner: &UserId) -> Result<u64> {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM mailbox_messages WHERE owner = ? AND read = 0 AND deleted_at IS NULL")
                .bind(owner.as_str())
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(n.max(0) as u64)
    }
}

fn call_from_row(row: &SqliteRow) -> Result<CallRecord> {
    let get = |e: sqlx::Error| StoreError::Corrupt { what: "call record", reason: e.to_string() };
    let devices: String = row.try_get("devices").map_err(get)?;
    Ok(CallRecord {
        id: RecordId::from_string(row.try_get::<String, _>("id").map_err(get)?),
        caller: row.try_get("caller").map_err(get)?,
        callee: row.try_get("callee").map_err(get)?,
        path: parse_field("call record", &row.try_get::<String, _>("path").map_err(get)?)?,
        devices: serde_json::from_str(&devices).map_err(|e| corrupt("call record")(e.to_string()))?,
        started_at: Timestamp::from_millis(row.try_get("started_at").map_err(get)?),
        answered_at: row.try_get::<Option<i64>, _>("answered_at").map_err(get)?.map(Timestamp::from_millis),
        ended_at: Timestamp::from_millis(row.try_get("ended_at").map_err(get)?),
        outcome: parse_field("call record", &row.try_get::<String, _>("outcome").map_err(get)?)?,
    })
}

#[async_trait]
impl CallLogStore for SqliteStore {
    async fn add_call_record(&self, r: &CallRecord) -> Result<()> {
        let devices = serde_json::to_string(&r.devices).map_err(|e| StoreError::Backend(e.to_string()))?;
        sqlx::query(
            "INSERT INTO call_records (id, caller, callee, path, devices, started_at, answered_at, ended_at, outcome) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.id.as_str())
        .bind(&r.caller)
        .bind(&r.callee)
        .bind(r.path.as_str())
        .bind(devices)
        .bind(r.started_at.as_millis())
        .bind(r.answered_at.map(Timestamp::as_millis))
        .bind(r.ended_at.as_millis())
        .bind(r.outcome.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| db_err(e).with_value(|_| Some(r.id.to_string())))?;
        Ok(())
    }

    async fn call_records(&self, party: Option<&str>, limit: usize) -> Result<Vec<CallRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match party {
            Some(p) => {
                sqlx::query(
                    "SELECT * FROM call_records WHERE caller = ?1 OR callee = ?1 \
                     ORDER BY started_at DESC, id DESC LIMIT ?2",
                )
                .bind(p)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query("SELECT * FROM call_records ORDER BY started_at DESC, id DESC LIMIT ?")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(call_from_row).collect()
    }
}

fn audit_from_row(row: &SqliteRow) -> Result<AuditEntry> {
    let get = |e: sqlx::Error| StoreError::Corrupt { what: "audit entry", reason: e.to_string() };
    Ok(AuditEntry {
        id: RecordId::from_string(row.try_get::<String, _>("id").map_err(get)?),
        at: Timestamp::from_millis(row.try_get("at").map_err(get)?),
        user_id: row.try_get::<Option<String>, _>("user_id").map_err(get)?.map(UserId::from_string),
        actor: row.try_get("actor").map_err(get)?,
        ip: row.try_get("ip").map_err(get)?,
        action: row.try_get("action").map_err(get)?,
        detail: row.try_get("detail").map_err(get)?,
    })
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn audit(&self, e: NewAuditEntry) -> Result<AuditEntry> {
        let entry = AuditEntry {
            id: RecordId::generate(),
            at: Timestamp::now(),
            user_id: e.user_id,
            actor: e.actor,
            ip: e.ip,
            action: e.action,
            detail: e.detail,
        };
        sqlx::query("INSERT INTO audit_log (id, at, user_id, actor, ip, action, detail) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(entry.id.as_str())
            .bind(entry.at.as_millis())
            .bind(entry.user_id.as_ref().map(UserId::as_str))
            .bind(&entry.actor)
            .bind(&entry.ip)
            .bind(&entry.action)
            .bind(&entry.detail)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(entry)
    }

    async fn audit_entries(&self, user: Option<&UserId>, limit: usize) -> Result<Vec<AuditEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match user {
            Some(u) => {
                sqlx::query("SELECT * FROM audit_log WHERE user_id = ? ORDER BY at DESC, id DESC LIMIT ?")
                    .bind(u.as_str())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query("SELECT * FROM audit_log ORDER BY at DESC, id DESC LIMIT ?")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(audit_from_row).collect()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }

    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conformance.db");
        let open = || {
            let path = path.clone();
            async move { SqliteStore::open(&path, 8).await.map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn Store>) }
        };
        super::super::run_conformance_suite(open).await;
    }

    #[tokio::test]
    async fn wal_mode_and_foreign_keys_are_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("x.db"), 2).await.unwrap();
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(&store.pool).await.unwrap();
        assert_eq!(mode, "wal");
        let (fk,): (i64,) = sqlx::query_as("PRAGMA foreign_keys").fetch_one(&store.pool).await.unwrap();
        assert_eq!(fk, 1);
    }

    #[tokio::test]
    async fn unopenable_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = SqliteStore::open(&file.join("sub").join("hub.db"), 1).await.unwrap_err().to_string();
        assert!(err.starts_with("cannot open the database at "), "{err}");
    }
}
