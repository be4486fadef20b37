//! The `hub` command line (L5): argument parsing and output for people (tables) and
//! scripts (`--json`). Commands call the same domain API as the web app; this module
//! prints, it does not decide.

mod config_cmd;
mod ivr;
mod pbx;
mod progress;
mod sip;
mod table;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{FlagOverride, Sources};

pub use config_cmd::{check as config_check, show as config_show};
pub use ivr::run as ivr;
pub use pbx::{apply_after_user_change, run as pbx};
pub use sip::{calls as sip_calls, control as sip_control, dial as sip_dial, status as sip_status};
pub use users::run as users;

/// Exit codes, stable for scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The command failed (user not found, port in use, database unreachable…).
    Failure = 1,
    /// Bad configuration or usage.
    Config = 2,
    /// Asterisk unreachable, or the manager login refused.
    Pbx = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// Backup telephony hub: browser calling, Asterisk provisioning, IVR and voicemail.
#[derive(Debug, Parser)]
#[command(name = "hub", version, propagate_version = true, disable_help_subcommand = true)]
pub struct Cli {
    /// Config file (default: ./hub.toml when it exists)
    #[arg(long, global = true, value_name = "FILE", env = "HUB_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTPS listen address, e.g. 127.0.0.1:8443 (web.bind)
    #[arg(long, global = true, value_name = "ADDR:PORT")]
    pub bind: Option<String>,
    /// Directory for the hub's state (store.data_dir)
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Log format: human or json (log.format)
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or hub=debug (log.level)
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: HTTPS web app and API
    Serve,
    /// Show or validate the effective configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage the user directory
    #[command(subcommand)]
    Users(UsersCommand),
    /// See the phone system through Asterisk's manager interface
    #[command(subcommand)]
    Pbx(PbxCommand),
    /// The hub's SIP user agent (IVR and voicemail as Asterisk sees them)
    #[command(subcommand)]
    Sip(SipCommand),
    /// Check, simulate and test IVR scripts (no call needed)
    #[command(subcommand)]
    Ivr(IvrCommand),
    /// Print the hub's version
    Version(JsonFlag),
}

/// `hub ivr …`
#[derive(Debug, Subcommand)]
pub enum IvrCommand {
    /// Compile scripts (default: every *.rhai in ivr.scripts_dir); errors as file:line:column
    Check {
        /// Script files
        files: Vec<PathBuf>,
    },
    /// Run a script against a simulated caller and print the transcript
    Simulate {
        /// Script file, or a name inside ivr.scripts_dir
        script: PathBuf,
        /// Caller input in order: digits, _ (a read times out), hangup, rec:SECONDS
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        digits: String,
        /// The caller's number
        #[arg(long, value_name = "NUMBER")]
        caller: Option<String>,
        /// The number dialled (default: the route to this script)
        #[arg(long, value_name = "NUMBER")]
        dialled: Option<String>,
        /// JSON fixture: HTTP answers ("GET url"), directory, missing prompts
        #[arg(long, value_name = "FIXTURE.json")]
        http: Option<PathBuf>,
    },
    /// Run script tests (default: ivr.scripts_dir/tests/*.toml); a mismatch prints a diff
    Test {
        /// Test files
        files: Vec<PathBuf>,
    },
}

/// `hub config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (file, environment and flags merged; secrets redacted)
    Show,
    /// Validate the configuration without starting anything
    Check,
}

/// `--json`
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Machine-readable JSON output
    #[arg(long)]
    pub json: bool,
}

/// `hub pbx …`
#[derive(Debug, Subcommand)]
pub enum PbxCommand {
    /// PJSIP endpoints with their state and registered contacts
    Endpoints {
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Registered contacts (desk phones, browsers)
    Contacts {
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Live channels
    Channels {
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// AMI reachable?, Asterisk version, last reload, pending changes, users provisioned/failed,
    /// registered contacts
    Status {
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Print the Asterisk config the hub would write now (passwords masked)
    Render {
        /// Only the differences from the files written last
        #[arg(long)]
        diff: bool,
    },
    /// Write the config, reload Asterisk once and verify every changed endpoint
    Apply {
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Reload Asterisk and re-verify every user's endpoint, changed or not
    Reload {
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Place a test call: ring FROM (a user, or a channel like PJSIP/1001), then dial TO
    Originate {
        /// Username, extension, or a channel (`PJSIP/name`, `Local/200@ctx`)
        from: String,
        /// The number to dial once FROM answers
        to: String,
        /// Seconds to wait for FROM to answer
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Replace SIP secrets now (all users, or one) and apply
    Rotate {
        /// Only this user (username, extension or id)
        #[arg(long)]
        user: Option<String>,
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Check that Asterisk's pjsip.conf and extensions.conf include the hub's files
    Init {
        /// Asterisk's config directory (default: pbx.asterisk_config_dir)
        #[arg(long, value_name = "DIR")]
        asterisk_dir: Option<PathBuf>,
    },
}

/// `hub sip …`
#[derive(Debug, Subcommand)]
pub enum SipCommand {
    /// Is the running hub's user agent answering, and is it registered?
    Status {
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List the live calls of the running hub's user agent
    Calls {
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Hang up a live call (BYE), by the id `hub sip calls` shows
    Hangup {
        /// The call's id.
        id: u64,
    },
    /// Call an extension through the registrar; the phone that answers hears itself (echo test)
    Dial {
        /// The extension to call.
        extension: String,
    },
    /// Blind-transfer a live call to an extension (REFER)
    Transfer {
        /// The call's id.
        id: u64,
        /// The extension to transfer to.
        extension: String,
    },
}

/// `hub users …`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users, sorted by name
    List {
        /// Only users whose name, username or e-mail has a word starting with this
        #[arg(long, value_name = "PREFIX")]
        search: Option<String>,
        /// Include disabled users
        #[arg(long)]
        all: bool,
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show one user (by username, extension or id)
    Show {
        /// Username, extension or id
        user: String,
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Create a user
    Add {
        /// Login-style name (letters, digits, . _ - @ +)
        #[arg(long)]
        username: String,
        /// Display name colleagues see
        #[arg(long)]
        name: String,
        /// E-mail address
        #[arg(long)]
        email: Option<String>,
        /// Extension (default: the next free one of pbx.extension_range)
        #[arg(long)]
        extension: Option<String>,
        /// Phone number, NUMBER[:work|mobile|home|other]; repeatable
        #[arg(long = "number", value_name = "NUMBER[:KIND]")]
        numbers: Vec<String>,
        /// Make the user an administrator
        #[arg(long)]
        admin: bool,
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Disable a user: they cannot sign in, and their sessions end at once
    Disable {
        /// Username, extension or id
        user: String,
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List a user's signed-in devices (sessions)
    Sessions {
        /// Username, extension or id
        user: String,
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Sign a user out on every device
    Logout {
        /// Username, extension or id
        user: String,
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Re-enable a disabled user
    Enable {
        /// Username, extension or id
        user: String,
        /// Output format.
        #[command(flatten)]
        out: JsonFlag,
    },
}

impl Cli {
    /// Where configuration comes from: the process environment, the file and these flags.
    pub fn sources(&self) -> Sources {
        let mut flags = Vec::new();
        let mut flag = |flag: &'static str, key: &'static str, value: &Option<String>| {
            if let Some(v) = value {
                flags.push(FlagOverride { flag, key, value: v.clone() });
            }
        };
        flag("--bind", "web.bind", &self.bind);
        flag("--data-dir", "store.data_dir", &self.data_dir);
        flag("--log-format", "log.format", &self.log_format);
        flag("--log-level", "log.level", &self.log_level);
        Sources::from_process(self.config.clone(), flags)
    }
}

/// `hub version`.
pub fn version(out: &JsonFlag) {
    let version = env!("CARGO_PKG_VERSION");
    if out.json {
        println!("{}", serde_json::json!({ "version": version }));
    } else {
        println!("hub {version}");
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_become_config_overrides() {
        let cli = Cli::try_parse_from(["hub", "--bind", "127.0.0.1:9", "users", "list", "--data-dir", "/d"]).unwrap();
        let keys: Vec<_> = cli.sources().flags.iter().map(|f| (f.key, f.value.clone())).collect();
        assert_eq!(keys, [("web.bind", "127.0.0.1:9".to_string()), ("store.data_dir", "/d".to_string())]);
    }
}
