//! The numbers the hub answers for browser callers: the calls controller's [`HubNumbers`],
//! carried out by the media apps' WebRTC peer. Here, in the composition root, so that `calls`
//! and `media` (both L3) need not know each other.

use std::sync::Arc;

use crate::calls::service::{HubNumbers, ServiceCall, ServiceEvent, ServiceEvents, ServicePeer};
use crate::calls::signal::Party;
use crate::media::apps::Apps;
use crate::media::webrtc::{SessionEvent, WebRtcCall};
use crate::model::Extension;
use crate::sip::media_port::CallInfo;
use crate::store::Store;

/// [`HubNumbers`] over the media apps of `[media.numbers]` and the IVR's routes; `store`
/// finds the colleague a script transfers a browser caller to.
pub struct BrowserNumbers {
    /// The apps.
    pub apps: Arc<Apps>,
    /// The directory.
    pub store: Arc<dyn Store>,
}

/// The colleague with `extension`, as the signaling shows them.
async fn colleague(store: &dyn Store, extension: &str) -> Option<Party> {
    let ext = Extension::new(extension).ok()?;
    let user = store.user_by_extension(&ext).await.ok()??;
    (!user.disabled).then(|| Party {
        id: user.id,
        name: user.display_name,
        extension: user.extension.map(|e| e.to_string()),
    })
}

impl HubNumbers for BrowserNumbers {
    fn name(&self, number: &str) -> Option<String> {
        self.apps.name(number)
    }

    fn answer(&self, call: ServiceCall, events: ServiceEvents) -> Result<Box<dyn ServicePeer>, String> {
        let info = CallInfo {
            id: call.call.to_string(),
            call_id: call.call.to_string(),
            // The caller's name as a display name, their extension (else user id) as the number.
            from: format!(
                "\"{}\" <{}>",
                call.caller.name.replace('"', "'"),
                call.caller.extension.clone().unwrap_or_else(|| call.caller.id.to_string())
            ),
            to: call.number,
            peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
            headers: Vec::new(),
        };
        let events: Arc<ServiceEvents> = Arc::new(events);
        let store = self.store.clone();
        let on_event = Box::new(move |event| match event {
            SessionEvent::Answer(sdp) => events(ServiceEvent::Answer(sdp)),
            SessionEvent::Candidate(c) => events(ServiceEvent::Ice(c)),
            SessionEvent::Hangup(reason) => events(ServiceEvent::Hangup(reason)),
            SessionEvent::Failed(reason) => events(ServiceEvent::Failed(reason)),
            SessionEvent::Transfer(target) => {
                let (events, store) = (events.clone(), store.clone());
                tokio::spawn(async move {
                    match colleague(store.as_ref(), &target).await {
                        Some(party) => events(ServiceEvent::Transfer(party)),
                        None => events(ServiceEvent::Hangup(format!("transfer: no colleague has extension {target}"))),
                    }
                });
            }
        });
        let call = self.apps.open_webrtc(info, on_event).map_err(|e| e.to_string())?;
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
