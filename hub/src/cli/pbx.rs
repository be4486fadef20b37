//! `hub pbx …`: the phone system as Asterisk sees it, through AMI.

use crate::config::{AmiTarget, PbxConfig};
use crate::pbx::ami::AmiError;
use crate::pbx::asterisk;

use super::table::Table;
use super::{Exit, PbxCommand};

/// Runs a `hub pbx` subcommand. Asterisk unreachable or the login refused: one line, exit 3.
pub async fn run(command: PbxCommand, config: &PbxConfig) -> Exit {
    let Some(url) = &config.ami_url else {
        eprintln!(
            "error: no Asterisk is configured: set [pbx] ami_url = \"ami://user:secret@host:5038\" (or HUB_PBX__AMI_URL)"
        );
        return Exit::Config;
    };
    let target = match AmiTarget::parse(url.expose()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: key pbx.ami_url: {e}");
            return Exit::Config;
        }
    };
    match execute(command, &target, config).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                AmiError::Refused { .. } => Exit::Failure,
                _ => Exit::Pbx,
            }
        }
    }
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

async fn execute(command: PbxCommand, target: &AmiTarget, config: &PbxConfig) -> Result<(), AmiError> {
    let mut s = asterisk::connect(target, config.ami_auth).await?;
    match command {
        PbxCommand::Endpoints { out } => {
            let rows = asterisk::endpoints(&mut s).await?;
            if out.json {
                print_json(&rows);
            } else {
                let mut t = Table::new(vec!["ENDPOINT", "STATE", "CONTACTS"]);
                for r in &rows {
                    t.row(vec![r.name.clone(), r.state.clone(), r.contacts.len().to_string()]);
                }
                print!("{}", t.render());
            }
        }
        PbxCommand::Contacts { out } => {
            let rows = asterisk::contacts(&mut s).await?;
            if out.json {
                print_json(&rows);
            } else if rows.is_empty() {
                println!("no registered contacts");
            } else {
                let mut t = Table::new(vec!["AOR", "CONTACT", "STATUS", "RTT", "USER AGENT"]);
                for r in &rows {
                    let rtt = r.rtt_us.map_or_else(|| "-".to_string(), |us| format!("{:.1} ms", us as f64 / 1000.0));
                    t.row(vec![r.aor.clone(), r.uri.clone(), r.status.clone(), rtt, r.user_agent.clone()]);
                }
                print!("{}", t.render());
            }
        }
        PbxCommand::Channels { out } => {
            let rows = asterisk::channels(&mut s).await?;
            if out.json {
                print_json(&rows);
            } else if rows.is_empty() {
                println!("no live channels");
            } else {
                let mut t = Table::new(vec!["CHANNEL", "STATE", "CALLER", "EXTEN", "APPLICATION", "DURATION"]);
                for r in &rows {
                    t.row(vec![
                        r.channel.clone(),
                        r.state.clone(),
                        r.caller.clone(),
                        r.exten.clone(),
                        r.application.clone(),
                        r.duration.clone(),
                    ]);
                }
                print!("{}", t.render());
            }
        }
    }
    s.logoff().await
}
