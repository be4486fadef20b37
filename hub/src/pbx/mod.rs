//! Asterisk (L2): the Asterisk Manager Interface (codec, connection, command session), the
//! read side a sysadmin uses (`hub pbx endpoints|contacts|channels`), and the config the hub
//! generates for Asterisk.
//!
//! ```text
//!  plan.rs        PbxPlan: users, the hub's trunk, dialplan inputs, endpoint settings
//!  conf_value.rs  what a value must be to enter config: strict charsets, sanitized free text,
//!                 the template escape function
//!  pjsip.rs       typed contexts for the PJSIP templates (PjsipUser, PjsipTrunk)
//!  dialplan.rs    typed context for the dialplan template
//!  templates.rs   the Handlebars templates: built in, overridable, strict
//!  render.rs      render (plan → files + per-user revisions), write (atomic), diff
//! ```

pub mod ami;
pub mod asterisk;
pub mod conf_value;
pub mod dialplan;
pub mod pjsip;
pub mod plan;
pub mod render;
pub mod templates;

pub use conf_value::ValueError;
pub use dialplan::Dialplan;
pub use pjsip::{PjsipTrunk, PjsipUser};
pub use plan::{DialplanPlan, EndpointSettings, PbxPlan, PlannedUser, TrunkPlan};
pub use render::{ConfigFile, RenderError, RenderedConfig, diff, render, write};
pub use templates::{TemplateName, TemplateOrigin, Templates};
