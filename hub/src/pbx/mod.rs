//! Asterisk (L2): the Asterisk Manager Interface, as far as it is built so far: the wire
//! codec, proven against real Asterisk 22 transcripts.

pub mod ami;
