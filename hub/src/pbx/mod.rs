//! Asterisk (L2): the Asterisk Manager Interface (codec, connection, command session), the
//! read side a sysadmin uses (`hub pbx endpoints|contacts|channels`), the config the hub
//! generates for Asterisk, provisioning (SIP accounts, one coalesced reload, verification),
//! and the live SIP presence of every endpoint, kept current by a long-lived AMI event link.
//!
//! ```text
//!  ami/               the protocol: frames, one connection, a logged-in session
//!  asterisk.rs        listings as plain rows (endpoints, contacts, channels) and actions
//!  plan.rs            PbxPlan: users, the hub's trunk, dialplan inputs, endpoint settings
//!  conf_value.rs      what a value must be to enter config: strict charsets, sanitized free
//!                     text, the template escape function
//!  pjsip.rs           typed contexts for the PJSIP templates (PjsipUser, PjsipTrunk)
//!  dialplan.rs        typed context for the dialplan template
//!  templates.rs       the Handlebars templates: built in, overridable, strict
//!  render.rs          render (plan → files + per-user revisions), write (atomic), diff
//!  accounts.rs        generated SIP usernames and secrets, rotation
//!  provision.rs       store → render → write → one reload → verify → record
//!  provision_loop.rs  coalescing, retry while Asterisk is down, resync
//!  presence.rs        SipPresence: per endpoint, registered contacts and device state
//!  link.rs            EventLink: events-on session that seeds and updates SipPresence, reconnects
//! ```

pub mod accounts;
pub mod ami;
pub mod asterisk;
pub mod conf_value;
pub mod dialplan;
pub mod link;
pub mod pjsip;
pub mod plan;
pub mod presence;
pub mod provision;
pub mod provision_loop;
pub mod render;
pub mod templates;

pub use conf_value::ValueError;
pub use dialplan::Dialplan;
pub use link::{EventLink, LinkHandle, LinkOptions, LinkStatus};
pub use pjsip::{PjsipTrunk, PjsipUser};
pub use plan::{DialplanPlan, EndpointSettings, PbxPlan, PlannedUser, TrunkPlan};
pub use presence::{ContactStatus, DeviceState, EndpointPresence, SipPresence};
pub use render::{ConfigFile, RenderError, RenderedConfig, diff, render, write};
pub use templates::{TemplateName, TemplateOrigin, Templates};
