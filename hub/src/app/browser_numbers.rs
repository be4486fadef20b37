//! The numbers the hub answers for browser callers: the calls controller's [`HubNumbers`],
//! carried out by the media apps' WebRTC peer. Here, in the composition root, so that `calls`
//! and `media` (both L3) need not know each other.

use std::sync::Arc;

use crate::calls::service::{HubNumbers, ServiceCall, ServiceEvent, ServiceEvents, ServicePeer};
use crate::media::apps::Apps;
use crate::media::webrtc::{SessionEvent, WebRtcCall};
use crate::sip::media_port::CallInfo;

/// [`HubNumbers`] over the media apps of `[media.numbers]`.
pub struct BrowserNumbers(pub Arc<Apps>);

impl HubNumbers for BrowserNumbers {
    fn name(&self, number: &str) -> Option<String> {
        self.0.name(number)
    }

    fn answer(&self, call: ServiceCall, events: ServiceEvents) -> Result<Box<dyn ServicePeer>, String> {
        let info = CallInfo {
            id: call.call.to_string(),
            call_id: call.call.to_string(),
            from: call.caller.extension.clone().unwrap_or_else(|| call.caller.id.to_string()),
            to: call.number,
            peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let on_event = Box::new(move |event| {
            events(match event {
                SessionEvent::Answer(sdp) => ServiceEvent::Answer(sdp),
                SessionEvent::Candidate(c) => ServiceEvent::Ice(c),
                SessionEvent::Hangup(reason) => ServiceEvent::Hangup(reason),
                SessionEvent::Failed(reason) => ServiceEvent::Failed(reason),
            });
        });
        let call = self.0.open_webrtc(info, on_event).map_err(|e| e.to_string())?;
        Ok(Box::new(BrowserPeer(call)))
    }
}

/// The hub's side of one browser call: signaling goes to its WebRTC peer.
struct BrowserPeer(WebRtcCall);

impl ServicePeer for BrowserPeer {
    fn offer(&mut self, sdp: String) {
        self.0.offer(sdp);
    }

    fn ice(&mut self, candidate: serde_json::Value) {
        self.0.candidate(candidate);
    }
}
