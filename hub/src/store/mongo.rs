//! MongoDB backend (official driver), for organisations that already run MongoDB.
//!
//! One collection per record kind. Uniqueness is enforced by unique indexes created at open
//! (partial where the field is optional, matching SQLite's "many NULLs" rule), so concurrent
//! hubs writing to one deployment cannot create duplicates. A user's numbers and search
//! tokens live inside the user document, so every user write is a single-document (atomic)
//! operation; read-modify-write updates use a revision counter and retry instead of needing
//! multi-document transactions (which a standalone server does not offer).

use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

use super::{
    AuditStore, CallLogStore, DirectoryStore, MailboxStore, ProvisioningStore, Result, SessionStore, SipAccountStore,
    Store, StoreError, Unique, UserQuery,
};
use crate::model::{
    AuditEntry, CallRecord, Extension, MailboxMessage, MessageId, NewAuditEntry, NewMailboxMessage, NewUser, Number,
    NumberSource, ProvisionRecord, ProvisionStatus, RecordId, ReloadRecord, Secret, Session, SessionId, SipAccount,
    Timestamp, User, UserId, UserUpdate, search_tokens,
};

/// How often a read-modify-write retries when another writer changed the document between
/// its read and its write.
const MAX_RETRIES: usize = 16;

/// MongoDB-backed [`Store`].
#[derive(Clone, Debug)]
pub struct MongoStore {
    client: Client,
    db: Database,
}

/// Index names, matched in duplicate-key errors to tell which rule was broken.
const IDX_USERNAME: &str = "users_username_unique";
const IDX_SUBJECT: &str = "users_subject_unique";
const IDX_EXTENSION: &str = "users_extension_unique";
const IDX_SIP_USERNAME: &str = "sip_accounts_username_unique";

impl MongoStore {
    /// Connects to `url`, uses database `database`, and creates the indexes.
    pub async fn open(url: &str, database: &str) -> Result<Self> {
        let location = crate::config::ConnectionUrl::new(url).redacted();
        let open_err = |reason: String| StoreError::Open { location: location.clone(), reason };
        let client = Client::with_uri_str(url).await.map_err(|e| open_err(e.to_string()))?;
        let db = client.database(database);
        let store = Self { client, db };
        store.create_indexes().await.map_err(|e| open_err(e.to_string()))?;
        Ok(store)
    }

    async fn create_indexes(&self) -> Result<()> {
        let unique = |name: &str| IndexOptions::builder().unique(true).name(name.to_string()).build();
        let partial_unique = |name: &str, field: &str| {
            IndexOptions::builder()
                .unique(true)
                .name(name.to_string())
                .partial_filter_expression(doc! { field: { "$type": "string" } })
                .build()
        };
        let named = |name: &str| IndexOptions::builder().name(name.to_string()).build();
        let users = self.users();
        let idx = |keys: Document, options: IndexOptions| IndexModel::builder().keys(keys).options(options).build();
        users.create_index(idx(doc! { "username": 1 }, unique(IDX_USERNAME))).await.map_err(db_err)?;
        users.create_index(idx(doc! { "subject": 1 }, partial_unique(IDX_SUBJECT, "subject"))).await.map_err(db_err)?;
        users
            .create_index(idx(doc! { "extension": 1 }, partial_unique(IDX_EXTENSION, "extension")))
            .await
            .map_err(db_err)?;
        users.create_index(idx(doc! { "tokens": 1 }, named("users_tokens"))).await.map_err(db_err)?;
        users.create_index(idx(doc! { "sort_key": 1, "_id": 1 }, named("users_sort"))).await.map_err(db_err)?;
        let sessions = self.sessions();
        sessions
            .create_index(idx(doc! { "user_id": 1, "created_at": 1 }, named("sessions_user")))
            .await
            .map_err(db_err)?;
        sessions.create_index(idx(doc! { "expires_at": 1 }, named("sessions_expiry"))).await.map_err(db_err)?;
        self.sip().create_index(idx(doc! { "username": 1 }, unique(IDX_SIP_USERNAME))).await.map_err(db_err)?;
        let mailbox = self.mailbox();
        mailbox
            .create_index(idx(doc! { "owner": 1, "created_at": -1 }, named("mailbox_owner")))
            .await
            .map_err(db_err)?;
        mailbox.create_index(idx(doc! { "deleted_at": 1 }, named("mailbox_deleted"))).await.map_err(db_err)?;
        let calls = self.calls();
        calls.create_index(idx(doc! { "started_at": -1 }, named("calls_start"))).await.map_err(db_err)?;
        calls.create_index(idx(doc! { "caller": 1, "started_at": -1 }, named("calls_caller"))).await.map_err(db_err)?;
        calls.create_index(idx(doc! { "callee": 1, "started_at": -1 }, named("calls_callee"))).await.map_err(db_err)?;
        let audit = self.audit_log();
        audit.create_index(idx(doc! { "at": -1 }, named("audit_time"))).await.map_err(db_err)?;
        audit.create_index(idx(doc! { "user_id": 1, "at": -1 }, named("audit_user"))).await.map_err(db_err)?;
        Ok(())
    }

    fn users(&self) -> Collection<UserDoc> {
        self.db.collection("users")
    }
    fn sessions(&self) -> Collection<SessionDoc> {
        self.db.collection("sessions")
    }
    fn sip(&self) -> Collection<SipDoc> {
        self.db.collection("sip_accounts")
    }
    fn provisioning(&self) -> Collection<ProvisionDoc> {
        self.db.collection("provisioning")
    }
    fn reloads(&self) -> Collection<ReloadDoc> {
        self.db.collection("pbx_reload")
    }
    fn mailbox(&self) -> Collection<MessageDoc> {
        self.db.collection("mailbox_messages")
    }
    fn calls(&self) -> Collection<CallDoc> {
        self.db.collection("call_records")
    }
    fn audit_log(&self) -> Collection<AuditDoc> {
        self.db.collection("audit_log")
    }

    async fn find_user(&self, filter: Document) -> Result<Option<User>> {
        self.users().find_one(filter).await.map_err(db_err)?.map(UserDoc::into_user).transpose()
    }

    async fn user_exists(&self, id: &UserId) -> Result<()> {
        match self.users().count_documents(doc! { "_id": id.as_str() }).await.map_err(db_err)? {
            0 => Err(StoreError::NotFound(format!("user {id}"))),
            _ => Ok(()),
        }
    }

    /// Read-modify-write of one user document, retried while another writer gets in between.
    async fn modify_user(&self, id: &UserId, change: impl Fn(&mut UserDoc)) -> Result<User> {
        for _ in 0..MAX_RETRIES {
            let Some(mut current) = self.users().find_one(doc! { "_id": id.as_str() }).await.map_err(db_err)? else {
                return Err(StoreError::NotFound(format!("user {id}")));
            };
            let rev = current.rev;
            change(&mut current);
            current.rev = rev + 1;
            current.updated_at = Timestamp::now().as_millis().max(current.updated_at);
            current.tokens = search_tokens(&current.display_name, &current.username, current.email.as_deref());
            current.sort_key = current.display_name.to_lowercase();
            let ext = current.extension.clone();
            let subject = current.subject.clone();
            let result =
                self.users().replace_one(doc! { "_id": id.as_str(), "rev": rev }, &current).await.map_err(|e| {
                    db_err(e).with_value(|w| match w {
                        Unique::Extension => ext.clone(),
                        Unique::Subject => subject.clone(),
                        _ => None,
                    })
                })?;
            if result.matched_count == 1 {
                return current.into_user();
            }
        }
        Err(StoreError::Backend(format!("user {id} kept changing under concurrent writers; gave up")))
    }
}

fn db_err(e: mongodb::error::Error) -> StoreError {
    let dup = match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000 => Some(w.message.clone()),
        ErrorKind::Command(c) if c.code == 11000 => Some(c.message.clone()),
        ErrorKind::InsertMany(m) => {
            m.write_errors.as_ref().and_then(|errs| errs.iter().find(|w| w.code == 11000)).map(|w| w.message.clone())
        }
        _ => None,
    };
    if let Some(message) = dup {
        let what = if message.contains(IDX_EXTENSION) {
            Unique::Extension
        } else if message.contains(IDX_SUBJECT) {
            Unique::Subject
        } else if message.contains(IDX_USERNAME) {
            Unique::Username
        } else if message.contains(IDX_SIP_USERNAME) {
            Unique::SipUsername
        } else {
            Unique::Id
        };
        return StoreError::Conflict { what, value: String::new() };
    }
    StoreError::Backend(e.to_string())
}

fn parse<T: std::str::FromStr>(what: &'static str, s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| StoreError::Corrupt { what, reason: e.to_string() })
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NumberDoc {
    number: String,
    kind: String,
    source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    subject: Option<String>,
    username: String,
    display_name: String,
    sort_key: String,
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    extension: Option<String>,
    disabled: bool,
    admin: bool,
    created_at: i64,
    updated_at: i64,
    numbers: Vec<NumberDoc>,
    tokens: Vec<String>,
    /// Bumped on every write: the optimistic-concurrency check of `modify_user`.
    rev: i64,
}

impl UserDoc {
    fn into_user(self) -> Result<User> {
        let numbers = self
            .numbers
            .into_iter()
            .map(|n| {
                Ok(Number { number: n.number, kind: parse("number", &n.kind)?, source: parse("number", &n.source)? })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(User {
            id: UserId::from_string(self.id),
            subject: self.subject,
            username: self.username,
            display_name: self.display_name,
            email: self.email,
            extension: self
                .extension
                .map(Extension::new)
                .transpose()
                .map_err(|e| StoreError::Corrupt { what: "user", reason: e.to_string() })?,
            disabled: self.disabled,
            admin: self.admin,
            numbers,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

fn number_docs(numbers: &[Number], source: NumberSource, out: &mut Vec<NumberDoc>) {
    for n in numbers {
        if !out.iter().any(|d| d.source == source.as_str() && d.number == n.number) {
            out.push(NumberDoc {
                number: n.number.clone(),
                kind: n.kind.as_str().into(),
                source: source.as_str().into(),
            });
        }
    }
}

/// Numbers grouped by source in a fixed order, so both backends return them alike.
fn sort_numbers(numbers: &mut [NumberDoc]) {
    numbers.sort_by(|a, b| a.source.cmp(&b.source));
}

#[async_trait]
impl DirectoryStore for MongoStore {
    async fn create_user(&self, new: NewUser) -> Result<User> {
        let now = Timestamp::now().as_millis();
        let mut numbers = Vec::new();
        for source in [NumberSource::Admin, NumberSource::Idp, NumberSource::User] {
            let of_source: Vec<Number> = new.numbers.iter().filter(|n| n.source == source).cloned().collect();
            number_docs(&of_source, source, &mut numbers);
        }
        sort_numbers(&mut numbers);
        let doc = UserDoc {
            id: UserId::generate().to_string(),
            tokens: search_tokens(&new.display_name, &new.username, new.email.as_deref()),
            sort_key: new.display_name.to_lowercase(),
            subject: new.subject,
            username: new.username,
            display_name: new.display_name,
            email: new.email,
            extension: new.extension.map(|e| e.to_string()),
            disabled: false,
            admin: new.admin,
            created_at: now,
            updated_at: now,
            numbers,
            rev: 0,
        };
        self.users().insert_one(&doc).await.map_err(|e| {
            db_err(e).with_value(|what| match what {
                Unique::Username => Some(doc.username.clone()),
                Unique::Subject => doc.subject.clone(),
                Unique::Extension => doc.extension.clone(),
                _ => None,
            })
        })?;
        doc.into_user()
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>> {
        self.find_user(doc! { "_id": id.as_str() }).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        self.find_user(doc! { "username": username }).await
    }

    async fn user_by_subject(&self, subject: &str) -> Result<Option<User>> {
        self.find_user(doc! { "subject": subject }).await
    }

    async fn user_by_extension(&self, extension: &Extension) -> Result<Option<User>> {
        self.find_user(doc! { "extension": extension.as_str() }).await
    }

    async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>> {
        let mut filter = Document::new();
        if !query.include_disabled {
            filter.insert("disabled", false);
        }
        if let Some(prefix) = query.name_prefix.as_deref().map(|p| p.trim().to_lowercase()).filter(|p| !p.is_empty()) {
            let upper = format!("{prefix}\u{10FFFF}");
            filter.insert("tokens", doc! { "$elemMatch": { "$gte": prefix, "$lt": upper } });
        }
        let users = self.users();
        let mut find = users.find(filter).sort(doc! { "sort_key": 1, "_id": 1 });
        if let Some(limit) = query.limit {
            find = find.limit(limit_of(limit));
        }
        let docs: Vec<UserDoc> = find.await.map_err(db_err)?.try_collect().await.map_err(db_err)?;
        docs.into_iter().map(UserDoc::into_user).collect()
    }

    async fn update_user(&self, id: &UserId, update: &UserUpdate) -> Result<User> {
        self.modify_user(id, |d| {
            if let Some(subject) = &update.subject {
                d.subject = Some(subject.clone());
            }
            if let Some(name) = &update.display_name {
                d.display_name = name.clone();
            }
            if let Some(email) = &update.email {
                d.email = email.clone();
            }
            if let Some(ext) = &update.extension {
                d.extension = ext.as_ref().map(ToString::to_string);
            }
            if let Some(admin) = update.admin {
                d.admin = admin;
            }
            if let Some(disabled) = update.disabled {
                d.disabled = disabled;
            }
        })
        .await
    }

    async fn set_numbers(&self, id: &UserId, source: NumberSource, numbers: &[Number]) -> Result<User> {
        self.modify_user(id, |d| {
            d.numbers.retain(|n| n.source != source.as_str());
            number_docs(numbers, source, &mut d.numbers);
            sort_numbers(&mut d.numbers);
        })
        .await
    }

    async fn extensions_in_range(&self, first: u32, last: u32) -> Result<Vec<u32>> {
        #[derive(Deserialize)]
        struct Ext {
            extension: String,
        }
        let coll: Collection<Ext> = self.db.collection("users");
        let docs: Vec<Ext> = coll
            .find(doc! { "extension": { "$type": "string" } })
            .projection(doc! { "extension": 1, "_id": 0 })
            .await
            .map_err(db_err)?
            .try_collect()
            .await
            .map_err(db_err)?;
        let mut out: Vec<u32> = docs
            .into_iter()
            .filter_map(|d| d.extension.parse::<u32>().ok())
            .filter(|e| (first..=last).contains(e))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    async fn count_users(&self) -> Result<u64> {
        self.users().count_documents(doc! {}).await.map_err(db_err)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionDoc {
    #[serde(rename = "_id")]
    id: String,
    user_id: String,
    created_at: i64,
    expires_at: i64,
    user_agent: Option<String>,
    ip: Option<String>,
}

impl From<SessionDoc> for Session {
    fn from(d: SessionDoc) -> Self {
        Session {
            id: SessionId::from_string(d.id),
            user_id: UserId::from_string(d.user_id),
            created_at: Timestamp::from_millis(d.created_at),
            expires_at: Timestamp::from_millis(d.expires_at),
            user_agent: d.user_agent,
            ip: d.ip,
        }
    }
}

#[async_trait]
impl SessionStore for MongoStore {
    async fn create_session(&self, s: &Session) -> Result<()> {
        self.user_exists(&s.user_id).await?;
        let doc = SessionDoc {
            id: s.id.as_str().into(),
            user_id: s.user_id.to_string(),
            created_at: s.created_at.as_millis(),
            expires_at: s.expires_at.as_millis(),
            user_agent: s.user_agent.clone(),
            ip: s.ip.clone(),
        };
        self.sessions().insert_one(&doc).await.map_err(db_err)?;
        Ok(())
    }

    async fn session(&self, id: &SessionId) -> Result<Option<Session>> {
        Ok(self.sessions().find_one(doc! { "_id": id.as_str() }).await.map_err(db_err)?.map(Session::from))
    }

    async fn session_with_user(&self, id: &SessionId) -> Result<Option<(Session, User)>> {
        let Some(session) = self.session(id).await? else { return Ok(None) };
        Ok(self.user(&session.user_id).await?.map(|u| (session, u)))
    }

    async fn sessions_of(&self, user: &UserId) -> Result<Vec<Session>> {
        let docs: Vec<SessionDoc> = self
            .sessions()
            .find(doc! { "user_id": user.as_str() })
            .sort(doc! { "created_at": 1, "_id": 1 })
            .await
            .map_err(db_err)?
            .try_collect()
            .await
            .map_err(db_err)?;
        Ok(docs.into_iter().map(Session::from).collect())
    }

    async fn delete_session(&self, id: &SessionId) -> Result<bool> {
        Ok(self.sessions().delete_one(doc! { "_id": id.as_str() }).await.map_err(db_err)?.deleted_count > 0)
    }

    async fn delete_sessions_of(&self, user: &UserId) -> Result<u64> {
        Ok(self.sessions().delete_many(doc! { "user_id": user.as_str() }).await.map_err(db_err)?.deleted_count)
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        let filter = doc! { "expires_at": { "$lte": now.as_millis() } };
        Ok(self.sessions().delete_many(filter).await.map_err(db_err)?.deleted_count)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SipDoc {
    #[serde(rename = "_id")]
    user_id: String,
    username: String,
    secret: String,
    rotated_at: i64,
}

impl From<SipDoc> for SipAccount {
    fn from(d: SipDoc) -> Self {
        SipAccount {
            user_id: UserId::from_string(d.user_id),
            username: d.username,
            secret: Secret::new(d.secret),
            rotated_at: Timestamp::from_millis(d.rotated_at),
        }
    }
}

#[async_trait]
impl SipAccountStore for MongoStore {
    async fn put_sip_account(&self, a: &SipAccount) -> Result<()> {
        self.user_exists(&a.user_id).await?;
        let doc = SipDoc {
            user_id: a.user_id.to_string(),
            username: a.username.clone(),
            secret: a.secret.expose().to_string(),
            rotated_at: a.rotated_at.as_millis(),
        };
        self.sip()
            .replace_one(doc! { "_id": a.user_id.as_str() }, &doc)
            .upsert(true)
            .await
            .map_err(|e| db_err(e).with_value(|_| Some(a.username.clone())))?;
        Ok(())
    }

    async fn sip_account(&self, user: &UserId) -> Result<Option<SipAccount>> {
        Ok(self.sip().find_one(doc! { "_id": user.as_str() }).await.map_err(db_err)?.map(SipAccount::from))
    }

    async fn sip_account_by_username(&self, username: &str) -> Result<Option<SipAccount>> {
        Ok(self.sip().find_one(doc! { "username": username }).await.map_err(db_err)?.map(SipAccount::from))
    }

    async fn sip_accounts(&self) -> Result<Vec<SipAccount>> {
        let docs: Vec<SipDoc> = self
            .sip()
            .find(doc! {})
            .sort(doc! { "username": 1 })
            .await
            .map_err(db_err)?
            .try_collect()
            .await
            .map_err(db_err)?;
        Ok(docs.into_iter().map(SipAccount::from).collect())
    }

    async fn delete_sip_account(&self, user: &UserId) -> Result<bool> {
        Ok(self.sip().delete_one(doc! { "_id": user.as_str() }).await.map_err(db_err)?.deleted_count > 0)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProvisionDoc {
    #[serde(rename = "_id")]
    user_id: String,
    endpoint: String,
    desired: Option<String>,
    applied: Option<String>,
    status: ProvisionStatus,
    detail: String,
    updated_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReloadDoc {
    #[serde(rename = "_id")]
    id: i32,
    at: i64,
    ok: bool,
    detail: String,
    changed: i64,
    duration_ms: i64,
}

#[async_trait]
impl ProvisioningStore for MongoStore {
    async fn provision_records(&self) -> Result<Vec<ProvisionRecord>> {
        let docs: Vec<ProvisionDoc> = self
            .provisioning()
            .find(doc! {})
            .sort(doc! { "endpoint": 1 })
            .await
            .map_err(db_err)?
            .try_collect()
            .await
            .map_err(db_err)?;
        Ok(docs
            .into_iter()
            .map(|d| ProvisionRecord {
                user_id: UserId::from_string(d.user_id),
                endpoint: d.endpoint,
                desired: d.desired,
                applied: d.applied,
                status: d.status,
                detail: d.detail,
                updated_at: Timestamp::from_millis(d.updated_at),
            })
            .collect())
    }

    async fn put_provision_records(&self, records: &[ProvisionRecord]) -> Result<()> {
        for r in records {
            self.user_exists(&r.user_id).await?;
            let doc = ProvisionDoc {
                user_id: r.user_id.to_string(),
                endpoint: r.endpoint.clone(),
                desired: r.desired.clone(),
                applied: r.applied.clone(),
                status: r.status,
                detail: r.detail.clone(),
                updated_at: r.updated_at.as_millis(),
            };
            self.provisioning()
                .replace_one(doc! { "_id": r.user_id.as_str() }, &doc)
                .upsert(true)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }

    async fn last_reload(&self) -> Result<Option<ReloadRecord>> {
        Ok(self.reloads().find_one(doc! { "_id": 1 }).await.map_err(db_err)?.map(|d| ReloadRecord {
            at: Timestamp::from_millis(d.at),
            ok: d.ok,
            detail: d.detail,
            changed: d.changed.clamp(0, i64::from(u32::MAX)) as u32,
            duration_ms: d.duration_ms.max(0) as u64,
        }))
    }

    async fn put_reload(&self, r: &ReloadRecord) -> Result<()> {
        let doc = ReloadDoc {
            id: 1,
            at: r.at.as_millis(),
            ok: r.ok,
            detail: r.detail.clone(),
            changed: i64::from(r.changed),
            duration_ms: i64::try_from(r.duration_ms).unwrap_or(i64::MAX),
        };
        self.reloads().replace_one(doc! { "_id": 1 }, &doc).upsert(true).await.map_err(db_err)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MessageDoc {
    #[serde(rename = "_id")]
    id: String,
    owner: String,
    sender: String,
    created_at: i64,
    duration_ms: i64,
    media_type: String,
    path: String,
    read: bool,
    deleted_at: Option<i64>,
}

impl From<MessageDoc> for MailboxMessage {
    fn from(d: MessageDoc) -> Self {
        MailboxMessage {
            id: MessageId::from_string(d.id),
            owner: UserId::from_string(d.owner),
            from: d.sender,
            created_at: Timestamp::from_millis(d.created_at),
            duration_ms: d.duration_ms.max(0) as u64,
            media_type: d.media_type,
            path: d.path,
            read: d.read,
            deleted_at: d.deleted_at.map(Timestamp::from_millis),
        }
    }
}

#[async_trait]
impl MailboxStore for MongoStore {
    async fn add_message(&self, m: NewMailboxMessage) -> Result<MailboxMessage> {
        self.user_exists(&m.owner).await?;
        let doc = MessageDoc {
            id: MessageId::generate().to_string(),
            owner: m.owner.to_string(),
            sender: m.from,
            created_at: Timestamp::now().as_millis(),
            duration_ms: to_i64(m.duration_ms),
            media_type: m.media_type,
            path: m.path,
            read: false,
            deleted_at: None,
        };
        self.mailbox().insert_one(&doc).await.map_err(db_err)?;
        Ok(doc.into())
    }

    async fn message(&self, id: &MessageId) -> Result<Option<MailboxMessage>> {
        Ok(self.mailbox().find_one(doc! { "_id": id.as_str() }).await.map_err(db_err)?.map(Into::into))
    }

    async fn messages(&self, owner: &UserId, trashed: bool) -> Result<Vec<MailboxMessage>> {
        let deleted = if trashed {
            doc! { "$ne": Bson::Null }
        } else {
            doc! { "$eq": Bson::Null }
        };
        let docs: Vec<MessageDoc> = self
            .mailbox()
            .find(doc! { "owner": owner.as_str(), "deleted_at": deleted })
            .sort(doc! { "created_at": -1, "_id": -1 })
            .await
            .map_err(db_err)?
            .try_collect()
            .await
            .map_err(db_err)?;
        Ok(docs.into_iter().map(Into::into).collect())
    }

    async fn set_read(&self, id: &MessageId, read: bool) -> Result<bool> {
        let r = self
            .mailbox()
            .update_one(doc! { "_id": id.as_str() }, doc! { "$set": { "read": read } })
            .await
            .map_err(db_err)?;
        Ok(r.matched_count > 0)
    }

    async fn set_trashed(&self, id: &MessageId, at: Option<Timestamp>) -> Result<bool> {
        let value = at.map_or(Bson::Null, |t| Bson::Int64(t.as_millis()));
        let r = self
            .mailbox()
            .update_one(doc! { "_id": id.as_str() }, doc! { "$set": { "deleted_at": value } })
            .await
            .map_err(db_err)?;
        Ok(r.matched_count > 0)
    }

    async fn delete_message(&self, id: &MessageId) -> Result<bool> {
        Ok(self.mailbox().delete_one(doc! { "_id": id.as_str() }).await.map_err(db_err)?.deleted_count > 0)
    }

    async fn trashed_before(&self, before: Timestamp) -> Result<Vec<MailboxMessage>> {
        let docs: Vec<MessageDoc> = self
            .mailbox()
            .find(doc! { "deleted_at": { "$ne": Bson::Null, "$lt": before.as_millis() } })
            .sort(doc! { "deleted_at": 1 })
            .await
            .map_err(db_err)?
            .try_collect()
            .await
            .map_err(db_err)?;
        Ok(docs.into_iter().map(Into::into).collect())
    }

    async fn unread_count(&self, owner: &UserId) -> Result<u64> {
        self.mailbox()
            .count_documents(doc! { "owner": owner.as_str(), "read": false, "deleted_at": Bson::Null })
            .await
            .map_err(db_err)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CallDoc {
    #[serde(rename = "_id")]
    id: String,
    caller: String,
    callee: String,
    path: String,
    devices: Vec<String>,
    started_at: i64,
    answered_at: Option<i64>,
    ended_at: i64,
    outcome: String,
}

impl CallDoc {
    fn into_record(self) -> Result<CallRecord> {
        Ok(CallRecord {
            id: RecordId::from_string(self.id),
            caller: self.caller,
            callee: self.callee,
            path: parse("call record", &self.path)?,
            devices: self.devices,
            started_at: Timestamp::from_millis(self.started_at),
            answered_at: self.answered_at.map(Timestamp::from_millis),
            ended_at: Timestamp::from_millis(self.ended_at),
            outcome: parse("call record", &self.outcome)?,
        })
    }
}

#[async_trait]
impl CallLogStore for MongoStore {
    async fn add_call_record(&self, r: &CallRecord) -> Result<()> {
        let doc = CallDoc {
            id: r.id.to_string(),
            caller: r.caller.clone(),
            callee: r.callee.clone(),
            path: r.path.as_str().into(),
            devices: r.devices.clone(),
            started_at: r.started_at.as_millis(),
            answered_at: r.answered_at.map(Timestamp::as_millis),
            ended_at: r.ended_at.as_millis(),
            outcome: r.outcome.as_str().into(),
        };
        self.calls().insert_one(&doc).await.map_err(|e| db_err(e).with_value(|_| Some(r.id.to_string())))?;
        Ok(())
    }

    async fn call_records(&self, party: Option<&str>, limit: usize) -> Result<Vec<CallRecord>> {
        let filter = match party {
            Some(p) => doc! { "$or": [ { "caller": p }, { "callee": p } ] },
            None => doc! {},
        };
        let docs: Vec<CallDoc> = self
            .calls()
            .find(filter)
            .sort(doc! { "started_at": -1, "_id": -1 })
            .limit(limit_of(limit))
            .await
            .map_err(db_err)?
            .try_collect()
            .await
            .map_err(db_err)?;
        docs.into_iter().map(CallDoc::into_record).collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AuditDoc {
    #[serde(rename = "_id")]
    id: String,
    at: i64,
    user_id: Option<String>,
    actor: String,
    ip: Option<String>,
    action: String,
    detail: String,
}

impl From<AuditDoc> for AuditEntry {
    fn from(d: AuditDoc) -> Self {
        AuditEntry {
            id: RecordId::from_string(d.id),
            at: Timestamp::from_millis(d.at),
            user_id: d.user_id.map(UserId::from_string),
            actor: d.actor,
            ip: d.ip,
            action: d.action,
            detail: d.detail,
        }
    }
}

#[async_trait]
impl AuditStore for MongoStore {
    async fn audit(&self, e: NewAuditEntry) -> Result<AuditEntry> {
        let doc = AuditDoc {
            id: RecordId::generate().to_string(),
            at: Timestamp::now().as_millis(),
            user_id: e.user_id.map(|u| u.to_string()),
            actor: e.actor,
            ip: e.ip,
            action: e.action,
            detail: e.detail,
        };
        self.audit_log().insert_one(&doc).await.map_err(db_err)?;
        Ok(doc.into())
    }

    async fn audit_entries(&self, user: Option<&UserId>, limit: usize) -> Result<Vec<AuditEntry>> {
        let filter = match user {
            Some(u) => doc! { "user_id": u.as_str() },
            None => doc! {},
        };
        let docs: Vec<AuditDoc> = self
            .audit_log()
            .find(filter)
            .sort(doc! { "at": -1, "_id": -1 })
            .limit(limit_of(limit))
            .await
            .map_err(db_err)?
            .try_collect()
            .await
            .map_err(db_err)?;
        Ok(docs.into_iter().map(Into::into).collect())
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn ping(&self) -> Result<()> {
        self.db.run_command(doc! { "ping": 1 }).await.map_err(db_err)?;
        Ok(())
    }

    fn backend_name(&self) -> &'static str {
        "mongodb"
    }

    async fn close(&self) {
        self.client.clone().shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Runs the conformance suite against a real MongoDB when `HUB_TEST_MONGODB_URL` is set,
    /// in a fresh database that is dropped afterwards. Without it, says so in one line.
    #[tokio::test]
    async fn conformance_on_mongodb() {
        let Ok(url) = std::env::var("HUB_TEST_MONGODB_URL") else {
            println!("MongoDB conformance suite SKIPPED: HUB_TEST_MONGODB_URL is not set (no MongoDB server was used)");
            return;
        };
        let database = format!("hub_conformance_{}", uuid::Uuid::now_v7().simple());
        let open = || {
            let (url, database) = (url.clone(), database.clone());
            async move { MongoStore::open(&url, &database).await.map(|s| Arc::new(s) as Arc<dyn Store>) }
        };
        super::super::run_conformance_suite(open).await;
        let cleanup = MongoStore::open(&url, &database).await.unwrap();
        cleanup.db.drop().await.unwrap();
        println!("MongoDB conformance suite ran against {}", crate::config::ConnectionUrl::new(url).redacted());
    }
}
