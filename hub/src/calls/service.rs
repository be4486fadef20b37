//! Numbers the hub answers itself, for browser callers: the built-in apps (echo, playback,
//! record) and, later, IVR scripts. A tab dials one like a colleague, and the hub's answering
//! side takes the callee's place in the call: it answers at once, receives the tab's SDP offer
//! and ICE candidates, and sends back its answer and candidates over the same signaling.
//!
//! This module only says what the controller needs of such a callee. The media module
//! implements it (a WebRTC peer feeding the media engine); the composition root wires the two,
//! so that neither imports the other.

use crate::model::CallId;

use super::signal::Party;

/// A browser call to a hub number, as the answering side sees it.
#[derive(Clone, Debug)]
pub struct ServiceCall {
    /// The call.
    pub call: CallId,
    /// The number dialled.
    pub number: String,
    /// Who calls.
    pub caller: Party,
}

/// What the answering side has for the caller's tab.
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceEvent {
    /// The SDP answer to the tab's offer.
    Answer(String),
    /// A local ICE candidate (`null`: no more).
    Ice(serde_json::Value),
    /// The app or script is done and hangs up (the tab sees a completed call).
    Hangup(String),
    /// The media connection failed (ICE, DTLS, a refused offer): the call ends as lost.
    Failed(String),
    /// The answering side transfers the caller to this colleague: the tab's call to the hub
    /// number ends and a call to them rings, as if the tab had called them.
    Transfer(Party),
}

/// Where the answering side sends its [`ServiceEvent`]s (called from any thread).
pub type ServiceEvents = Box<dyn Fn(ServiceEvent) + Send + Sync>;

/// The numbers the hub answers for browser callers.
pub trait HubNumbers: Send + Sync {
    /// The name shown to the caller for `number`, or `None` when the hub does not answer it.
    fn name(&self, number: &str) -> Option<String>;

    /// Answers a call to a number [`HubNumbers::name`] knows. Dropping the returned peer hangs
    /// the call up on the hub's side.
    fn answer(&self, call: ServiceCall, events: ServiceEvents) -> Result<Box<dyn ServicePeer>, String>;
}

/// The hub's side of one call to a hub number.
pub trait ServicePeer: Send {
    /// The tab's SDP offer (the first, or a renegotiation: hold, resume).
    fn offer(&mut self, sdp: String);
    /// One of the tab's ICE candidates (`null`: no more).
    fn ice(&mut self, candidate: serde_json::Value);
}
