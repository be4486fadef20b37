//! Asterisk (L2): the Asterisk Manager Interface (codec, connection, command session) and
//! the read side a sysadmin uses (`hub pbx endpoints|contacts|channels`).

pub mod ami;
pub mod asterisk;
