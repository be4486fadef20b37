//! Asterisk (L2): the Asterisk Manager Interface (codec, connection, command session), the
//! read side a sysadmin uses (`hub pbx endpoints|contacts|channels`), and provisioning:
//! SIP accounts, config rendered from templates, one coalesced reload, verification.

pub mod accounts;
pub mod ami;
pub mod asterisk;
pub mod provision;
pub mod provision_loop;
