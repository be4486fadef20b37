//! Typed render context for the dialplan (`extensions.hbs` → `hub-extensions.conf`).
//!
//! ```text
//!  [hub-users]      users' endpoints start here:  include hub-local, hub-outbound, hub-refuse
//!  [hub-from-ivr]   the hub's user agent:         include hub-local, hub-refuse (never the PSTN)
//!  [hub-local]      extensions (all contacts ring, then voicemail) and IVR numbers
//!  [hub-outbound]   the sysadmin's patterns → the PSTN trunk (empty without a trunk)
//!  [hub-refuse]     everything else: logged and rejected (the toll-fraud guard)
//! ```
//!
//! Includes are searched in order and a context's own extensions beat included ones, so the
//! refusal is its own context, included last.

use serde::Serialize;

use super::conf_value::{self, ValueError};
use super::pjsip::{FROM_IVR_CONTEXT, PjsipUser};
use super::plan::DialplanPlan;

/// Extensions and IVR numbers of the hub.
pub const LOCAL_CONTEXT: &str = "hub-local";
/// Numbers that leave through the PSTN trunk.
pub const OUTBOUND_CONTEXT: &str = "hub-outbound";
/// The catch-all refusal.
pub const REFUSE_CONTEXT: &str = "hub-refuse";

/// Context names the hub defines itself; `settings.context` may not reuse one.
pub const FIXED_CONTEXTS: [&str; 4] = [LOCAL_CONTEXT, OUTBOUND_CONTEXT, REFUSE_CONTEXT, FROM_IVR_CONTEXT];

/// What `extensions.hbs` renders.
#[derive(Clone, Debug, Serialize)]
pub struct Dialplan<'a> {
    /// Context users' endpoints start in (`settings.context`).
    pub users_context: &'a str,
    /// [`LOCAL_CONTEXT`].
    pub local_context: &'static str,
    /// [`OUTBOUND_CONTEXT`].
    pub outbound_context: &'static str,
    /// [`REFUSE_CONTEXT`].
    pub refuse_context: &'static str,
    /// [`FROM_IVR_CONTEXT`].
    pub from_ivr_context: &'static str,
    /// The hub's user agent's endpoint: voicemail and IVR calls are dialled to it.
    pub trunk_endpoint: &'a str,
    /// Seconds a user's devices ring before voicemail.
    pub ring_seconds: u32,
    /// One entry per user.
    pub users: Vec<LocalExtension<'a>>,
    /// Numbers that reach an IVR script on the hub.
    pub ivr_numbers: Vec<&'a str>,
    /// Outbound routes; `None` when no PSTN trunk is configured.
    pub outbound: Option<Outbound<'a>>,
}

/// A user's extension in `[hub-local]`.
#[derive(Clone, Debug, Serialize)]
pub struct LocalExtension<'a> {
    /// The dialled extension.
    pub extension: &'a str,
    /// The endpoint whose contacts ring (`PJSIP_DIAL_CONTACTS`).
    pub endpoint: &'a str,
    /// The user part dialled on the trunk for voicemail (`<voicemail_prefix><extension>`).
    pub voicemail: String,
    /// The sanitized login name, for the comment line.
    pub username: String,
}

/// The PSTN trunk and what may be dialled through it.
#[derive(Clone, Debug, Serialize)]
pub struct Outbound<'a> {
    /// The sysadmin's PSTN trunk endpoint.
    pub trunk: &'a str,
    /// Checked Asterisk patterns.
    pub patterns: Vec<&'a str>,
}

impl<'a> Dialplan<'a> {
    /// Checks the dialplan inputs and lays out one entry per (already checked) user.
    pub fn new(
        plan: &'a DialplanPlan,
        users_context: &'a str,
        trunk_endpoint: &'a str,
        users: &[PjsipUser<'a>],
    ) -> Result<Self, ValueError> {
        if FIXED_CONTEXTS.contains(&users_context) {
            return Err(ValueError {
                field: "settings.context".into(),
                value: users_context.into(),
                reason: "is a context the hub defines itself",
            });
        }
        if plan.ring_seconds == 0 || plan.ring_seconds > 3600 {
            return Err(ValueError {
                field: "dialplan.ring_seconds".into(),
                value: plan.ring_seconds.to_string(),
                reason: "must be 1 to 3600",
            });
        }
        conf_value::identifier("dialplan.voicemail_prefix", &plan.voicemail_prefix)?;
        let ivr_numbers =
            plan.ivr_numbers.iter().map(|n| conf_value::number("dialplan.ivr_numbers", n)).collect::<Result<_, _>>()?;
        let patterns: Vec<&str> = plan
            .outbound_patterns
            .iter()
            .map(|p| conf_value::pattern("dialplan.outbound_patterns", p))
            .collect::<Result<_, _>>()?;
        let outbound = match plan.outbound_trunk.as_deref() {
            Some(trunk) => {
                let trunk = conf_value::identifier("dialplan.outbound_trunk", trunk)?;
                if trunk == trunk_endpoint {
                    return Err(ValueError {
                        field: "dialplan.outbound_trunk".into(),
                        value: trunk.into(),
                        reason: "is the hub's own endpoint, not a PSTN trunk",
                    });
                }
                Some(Outbound { trunk, patterns })
            }
            None => None,
        };
        Ok(Self {
            users_context,
            local_context: LOCAL_CONTEXT,
            outbound_context: OUTBOUND_CONTEXT,
            refuse_context: REFUSE_CONTEXT,
            from_ivr_context: FROM_IVR_CONTEXT,
            trunk_endpoint,
            ring_seconds: plan.ring_seconds,
            users: users
                .iter()
                .map(|u| LocalExtension {
                    extension: u.extension,
                    endpoint: u.name,
                    voicemail: format!("{}{}", plan.voicemail_prefix, u.extension),
                    username: u.username.clone(),
                })
                .collect(),
            ivr_numbers,
            outbound,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(plan: &DialplanPlan, context: &str) -> Result<(), ValueError> {
        Dialplan::new(plan, context, "hub", &[]).map(|_| ())
    }

    #[test]
    fn inputs_are_checked() {
        assert!(check(&DialplanPlan::default(), "hub-users").is_ok());
        let e = check(&DialplanPlan::default(), "hub-local").unwrap_err();
        assert_eq!(e.field, "settings.context");
        let cases = [
            ("dialplan.ivr_numbers", DialplanPlan { ivr_numbers: vec!["800\n[x]".into()], ..Default::default() }),
            ("dialplan.voicemail_prefix", DialplanPlan { voicemail_prefix: "vm;".into(), ..Default::default() }),
            ("dialplan.ring_seconds", DialplanPlan { ring_seconds: 0, ..Default::default() }),
            ("dialplan.outbound_trunk", DialplanPlan { outbound_trunk: Some("a b".into()), ..Default::default() }),
            ("dialplan.outbound_trunk", DialplanPlan { outbound_trunk: Some("hub".into()), ..Default::default() }),
            ("dialplan.outbound_patterns", DialplanPlan { outbound_patterns: vec!["_.".into()], ..Default::default() }),
        ];
        for (field, plan) in cases {
            assert_eq!(check(&plan, "hub-users").unwrap_err().field, field, "{plan:?}");
        }
    }

    #[test]
    fn patterns_are_checked_even_without_a_trunk() {
        let plan = DialplanPlan { outbound_patterns: vec!["_X.;".into()], ..Default::default() };
        assert!(check(&plan, "hub-users").is_err());
        let plan = DialplanPlan { outbound_patterns: vec!["_X.".into()], ..Default::default() };
        let d = Dialplan::new(&plan, "hub-users", "hub", &[]).unwrap();
        assert!(d.outbound.is_none(), "no trunk: nothing leaves");
    }
}
