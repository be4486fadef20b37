//! Typed render contexts for the PJSIP files: one [`PjsipUser`] per user
//! (`pjsip-user.hbs` → `hub-pjsip-users.conf`) and the [`PjsipTrunk`] of the hub's own user
//! agent (`pjsip-trunk.hbs` → `hub-pjsip-trunk.conf`).
//!
//! Building a context is where plan values are checked or sanitized (see [`super::conf_value`]):
//! a context only ever holds values that are safe to write into config.

use serde::Serialize;

use super::conf_value::{self, ValueError};
use super::plan::{EndpointSettings, PlannedUser, TrunkPlan};

/// Context the hub's own user agent's calls start in: users and IVR numbers, never the PSTN.
pub const FROM_IVR_CONTEXT: &str = "hub-from-ivr";

/// Suffix of auth section names: the auth of endpoint `alice-7f3a` is `alice-7f3a-auth`.
pub const AUTH_SUFFIX: &str = "-auth";

/// Endpoint options shared by every user, checked once for all of them (flattened into
/// each [`PjsipUser`] context).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct EndpointOptions<'a> {
    /// Dialplan context the user's calls start in.
    pub context: &'a str,
    /// `max_contacts` of the AOR.
    pub max_contacts: u32,
    /// `qualify_frequency` of the AOR.
    pub qualify_frequency: u32,
    /// `transport=`, written only when set.
    pub transport: Option<&'a str>,
    /// `rtp_timeout`.
    pub rtp_timeout: u32,
    /// `rtp_timeout_hold`.
    pub rtp_timeout_hold: u32,
    /// `media_address` (with `bind_rtp_to_media_address=yes`), written only when set.
    pub media_address: Option<&'a str>,
}

impl<'a> EndpointOptions<'a> {
    /// Checks the shared settings.
    pub fn new(s: &'a EndpointSettings) -> Result<Self, ValueError> {
        if s.max_contacts == 0 {
            return Err(ValueError {
                field: "settings.max_contacts".into(),
                value: "0".into(),
                reason: "at least one contact must be allowed",
            });
        }
        Ok(Self {
            context: conf_value::identifier("settings.context", &s.context)?,
            max_contacts: s.max_contacts,
            qualify_frequency: s.qualify_frequency_secs,
            transport: s.transport.as_deref().map(|t| conf_value::identifier("settings.transport", t)).transpose()?,
            rtp_timeout: s.rtp_timeout_secs,
            rtp_timeout_hold: s.rtp_timeout_hold_secs,
            media_address: s
                .media_address
                .as_deref()
                .map(|a| conf_value::ip_address("settings.media_address", a))
                .transpose()?,
        })
    }
}

/// What `pjsip-user.hbs` renders for one user: endpoint, auth and AOR.
#[derive(Clone, Debug, Serialize)]
pub struct PjsipUser<'a> {
    /// Endpoint and AOR section name, and the auth username (`sip_username`).
    pub name: &'a str,
    /// Auth section name (`<name>-auth`).
    pub auth: String,
    /// The hub's user id, sanitized like free text (it is only a comment), for the comment
    /// line.
    pub user_id: String,
    /// The hub login name, sanitized, for the comment line.
    pub username: String,
    /// Caller-ID name: the sanitized display name (or login name, or extension, if that is
    /// empty), safe inside `callerid="…" <…>`.
    pub callerid_name: String,
    /// The user's extension, the caller-ID number.
    pub extension: &'a str,
    /// The auth password.
    pub password: &'a str,
    /// The options every user's endpoint shares (`context`, `max_contacts`, …), at the top
    /// level of the template context.
    #[serde(flatten)]
    pub options: EndpointOptions<'a>,
    /// This user's config revision, carried as `set_var=HUB_REV=<rev>`. Empty (and then left
    /// out of the serialized context) while the revision itself is computed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rev: String,
}

impl<'a> PjsipUser<'a> {
    /// Checks and sanitizes one user's values; `rev` stays empty.
    pub fn new(u: &'a PlannedUser, options: &EndpointOptions<'a>) -> Result<Self, ValueError> {
        let field = |name: &str| format!("users[{}].{name}", u.user_id);
        let name = conf_value::identifier(&field("sip_username"), &u.sip_username)?;
        let extension = conf_value::number(&field("extension"), u.extension.as_str())?;
        let password = conf_value::secret(&field("secret"), &u.secret)?;
        let username = conf_value::free_text(&u.username);
        let mut callerid_name = conf_value::free_text(&u.display_name);
        if callerid_name.is_empty() {
            callerid_name = if username.is_empty() { extension.to_string() } else { username.clone() };
        }
        Ok(Self {
            name,
            auth: format!("{name}{AUTH_SUFFIX}"),
            user_id: conf_value::free_text(u.user_id.as_str()),
            username,
            callerid_name,
            extension,
            password,
            options: *options,
            rev: String::new(),
        })
    }
}

/// What `pjsip-trunk.hbs` renders: the hub's own user agent's endpoint, auth and AOR.
#[derive(Clone, Debug, Serialize)]
pub struct PjsipTrunk<'a> {
    /// Endpoint and AOR section name.
    pub name: &'a str,
    /// Auth section name (`<name>-auth`).
    pub auth: String,
    /// The auth username.
    pub username: &'a str,
    /// The auth password.
    pub password: &'a str,
    /// Context its calls start in: [`FROM_IVR_CONTEXT`].
    pub context: &'static str,
    /// `qualify_frequency` of the AOR.
    pub qualify_frequency: u32,
    /// `media_address`, as for users.
    pub media_address: Option<&'a str>,
}

impl<'a> PjsipTrunk<'a> {
    /// Checks the trunk's values.
    pub fn new(t: &'a TrunkPlan, options: &EndpointOptions<'a>) -> Result<Self, ValueError> {
        let name = conf_value::identifier("trunk.endpoint", &t.endpoint)?;
        Ok(Self {
            name,
            auth: format!("{name}{AUTH_SUFFIX}"),
            username: conf_value::identifier("trunk.username", &t.username)?,
            password: conf_value::secret("trunk.password", &t.password)?,
            context: FROM_IVR_CONTEXT,
            qualify_frequency: options.qualify_frequency,
            media_address: options.media_address,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Extension, Secret, UserId};

    fn user(display_name: &str, username: &str) -> PlannedUser {
        PlannedUser {
            user_id: UserId::from_string("u1"),
            username: username.into(),
            display_name: display_name.into(),
            extension: Extension::new("1001").unwrap(),
            sip_username: "alice-7f3a".into(),
            secret: Secret::new("pw"),
        }
    }

    #[test]
    fn caller_id_name_falls_back_to_login_name_then_extension() {
        let settings = EndpointSettings::default();
        let options = EndpointOptions::new(&settings).unwrap();
        let u = user("Anna\n[x]", "anna");
        assert_eq!(PjsipUser::new(&u, &options).unwrap().callerid_name, "Anna x");
        let u = user(" ;\n ", "anna");
        assert_eq!(PjsipUser::new(&u, &options).unwrap().callerid_name, "anna");
        let u = user("", "");
        assert_eq!(PjsipUser::new(&u, &options).unwrap().callerid_name, "1001");
    }

    #[test]
    fn settings_are_checked() {
        let bad = [
            EndpointSettings { context: "hub users".into(), ..Default::default() },
            EndpointSettings { transport: Some("ws;x".into()), ..Default::default() },
            EndpointSettings { media_address: Some("host".into()), ..Default::default() },
            EndpointSettings { max_contacts: 0, ..Default::default() },
        ];
        for s in &bad {
            assert!(EndpointOptions::new(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn the_revision_is_left_out_while_empty() {
        let settings = EndpointSettings::default();
        let options = EndpointOptions::new(&settings).unwrap();
        let u = user("Anna", "anna");
        let mut ctx = PjsipUser::new(&u, &options).unwrap();
        assert!(!serde_json::to_string(&ctx).unwrap().contains("\"rev\""));
        ctx.rev = "0123456789abcdef".into();
        assert!(serde_json::to_string(&ctx).unwrap().contains("\"rev\":\"0123456789abcdef\""));
    }
}
