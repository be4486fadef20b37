//! `hub users …`: the directory from the command line.

use crate::auth::{Auth, ClientInfo, SignInError, short_id};
use crate::directory::{Actor, AddUser, Directory, DirectoryError};
use crate::model::{Session, User};
use crate::store::UserQuery;

use super::table::Table;
use super::{Exit, UsersCommand};

/// Runs a `hub users` subcommand; prints the result or one error line.
pub async fn run(command: UsersCommand, directory: &Directory, auth: &Auth) -> Exit {
    match execute(command, directory, auth).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                DirectoryError::Invalid { .. } => Exit::Config,
                _ => Exit::Failure,
            }
        }
    }
}

fn signin_err(e: SignInError) -> DirectoryError {
    match e {
        SignInError::Directory(d) => d,
        SignInError::Store(s) => DirectoryError::Store(s),
        other => DirectoryError::Store(crate::store::StoreError::Backend(other.to_string())),
    }
}

async fn execute(command: UsersCommand, directory: &Directory, auth: &Auth) -> Result<(), DirectoryError> {
    let actor = Actor::cli();
    match command {
        UsersCommand::List { search, all, out } => {
            let users = directory.list(&UserQuery { name_prefix: search, include_disabled: all, limit: None }).await?;
            if out.json {
                print_json(&users);
            } else if users.is_empty() {
                println!("no users");
            } else {
                print!("{}", users_table(&users));
            }
        }
        UsersCommand::Show { user, out } => {
            let user = directory.find(&user).await?;
            let sessions = auth.sessions().list(&user.id).await.map_err(DirectoryError::Store)?;
            if out.json {
                let mut v = serde_json::to_value(&user).unwrap_or_default();
                v["sessions"] = serde_json::json!(sessions.len());
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", user_details(&user, sessions.len()));
            }
        }
        UsersCommand::Add { username, name, email, extension, numbers, admin, out } => {
            let request =
                AddUser { username, display_name: name, email, extension, numbers, admin, number_source: None };
            let user = directory.add_user(request, &actor).await?;
            if out.json {
                print_json(&user);
            } else {
                println!("created {} ({}), extension {}, id {}", user.username, user.display_name, ext(&user), user.id);
            }
        }
        UsersCommand::Disable { user, out } => {
            let (user, ended) = directory.set_disabled(&user, true, &actor).await?;
            if out.json {
                println!("{}", serde_json::json!({ "user": user, "sessions_ended": ended }));
            } else {
                println!("disabled {}; ended {ended} session(s)", user.username);
            }
        }
        UsersCommand::Sessions { user, out } => {
            let user = directory.find(&user).await?;
            let sessions = auth.sessions().list(&user.id).await.map_err(DirectoryError::Store)?;
            if out.json {
                let list: Vec<_> = sessions.iter().map(session_json).collect();
                print_json(&list);
            } else if sessions.is_empty() {
                println!("{} has no active sessions", user.username);
            } else {
                print!("{}", sessions_table(&sessions));
            }
        }
        UsersCommand::Logout { user, out } => {
            let user = directory.find(&user).await?;
            let ended =
                auth.sign_out_everywhere(&user, &actor.name, &ClientInfo::default()).await.map_err(signin_err)?;
            if out.json {
                println!("{}", serde_json::json!({ "user": user.username, "sessions_ended": ended }));
            } else {
                println!("signed {} out on every device; ended {ended} session(s)", user.username);
            }
        }
        UsersCommand::Enable { user, out } => {
            let (user, _) = directory.set_disabled(&user, false, &actor).await?;
            if out.json {
                print_json(&user);
            } else {
                println!("enabled {}", user.username);
            }
        }
    }
    Ok(())
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

fn ext(u: &User) -> String {
    u.extension.as_ref().map_or_else(|| "-".into(), ToString::to_string)
}

fn status(u: &User) -> String {
    match (u.disabled, u.admin) {
        (true, _) => "disabled".into(),
        (false, true) => "active, admin".into(),
        (false, false) => "active".into(),
    }
}

fn users_table(users: &[User]) -> String {
    let mut t = Table::new(vec!["USERNAME", "NAME", "EXT", "NUMBERS", "STATUS"]);
    for u in users {
        let numbers = u.numbers.iter().map(|n| n.number.as_str()).collect::<Vec<_>>().join(", ");
        t.row(vec![u.username.clone(), u.display_name.clone(), ext(u), numbers, status(u)]);
    }
    t.render()
}

fn session_json(s: &Session) -> serde_json::Value {
    serde_json::json!({
        "id": short_id(&s.id),
        "created_at": s.created_at.to_string(),
        "expires_at": s.expires_at.to_string(),
        "ip": s.ip,
        "user_agent": s.user_agent,
    })
}

fn sessions_table(sessions: &[Session]) -> String {
    let mut t = Table::new(vec!["SESSION", "SIGNED IN", "EXPIRES", "ADDRESS", "DEVICE"]);
    for s in sessions {
        let device: String = s.user_agent.clone().unwrap_or_else(|| "-".into()).chars().take(60).collect();
        t.row(vec![
            short_id(&s.id).to_string(),
            s.created_at.to_string(),
            s.expires_at.to_string(),
            s.ip.clone().unwrap_or_else(|| "-".into()),
            device,
        ]);
    }
    t.render()
}

fn user_details(u: &User, sessions: usize) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<12}{v}\n"));
    line("username", u.username.clone());
    line("name", u.display_name.clone());
    line("email", u.email.clone().unwrap_or_else(|| "-".into()));
    line("extension", ext(u));
    line("status", status(u));
    line("idp subject", u.subject.clone().unwrap_or_else(|| "- (not from the identity provider)".into()));
    line("sessions", sessions.to_string());
    line("created", u.created_at.to_string());
    line("updated", u.updated_at.to_string());
    line("id", u.id.to_string());
    if u.numbers.is_empty() {
        line("numbers", "-".into());
    }
    for (i, n) in u.numbers.iter().enumerate() {
        line(if i == 0 { "numbers" } else { "" }, format!("{}  {} ({})", n.number, n.kind, n.source));
    }
    out
}
