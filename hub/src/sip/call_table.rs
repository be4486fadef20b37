//! The live calls of the user agent: the admission limit, what `hub sip calls` lists, and the
//! handle by which a call is hung up or transferred from outside.
//!
//! Every call has a slot from the moment its INVITE is admitted until its dialog is gone
//! (BYE, CANCEL, missing ACK, RTP timeout, refusal): the call task removes it on every path,
//! so the table never holds a dead call.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

use super::media_port::{LegStats, MediaLeg};
use super::sdp::MediaParams;
use crate::model::Timestamp;

/// Why a call was not admitted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdmitError {
    /// `[sip] max_calls` calls are up: the INVITE gets `486 Busy Here`.
    #[error("the call limit ({0}) is reached")]
    Full(usize),
    /// The hub is stopping: the INVITE gets `503 Service Unavailable`.
    #[error("the user agent is shutting down")]
    Closing,
    /// The hub is falling behind ([`super::overload`]): the INVITE gets `503` with a short
    /// `Retry-After`.
    #[error("the user agent is overloaded")]
    Overloaded,
}

/// Where a call is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// INVITE received, not answered yet (ringing).
    Ringing,
    /// 200 sent, ACK not received yet.
    Answering,
    /// Answered and acknowledged.
    Up,
    /// The caller holds the call.
    Held,
    /// A transfer is in progress.
    Transferring,
    /// BYE sent or received; the dialog is being torn down.
    Ending,
}

/// Asked of a call from outside (the CLI, a shutdown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallCommand {
    /// Send BYE (or refuse it, if not answered yet).
    Hangup {
        /// Put in the BYE's `Reason`.
        reason: String,
    },
    /// Blind-transfer the caller to an extension (REFER).
    Transfer {
        /// The extension.
        target: String,
    },
}

/// One live call as `hub sip calls` shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallView {
    /// The hub's short id for the call (what `hub sip hangup` takes).
    pub id: u64,
    /// SIP Call-ID.
    pub call_id: String,
    /// The caller.
    pub from: String,
    /// What was dialled.
    pub to: String,
    /// Where the signalling comes from.
    pub peer: SocketAddr,
    /// Where it is in its life.
    pub state: CallState,
    /// When the INVITE arrived.
    pub started_at: Timestamp,
    /// When the ACK arrived.
    pub answered_at: Option<Timestamp>,
    /// Negotiated codec (`PCMU`…), once answered.
    pub codec: Option<String>,
    /// The hub's RTP address.
    pub local_rtp: Option<SocketAddr>,
    /// The caller's RTP address (none while held with `c=0.0.0.0`).
    pub remote_rtp: Option<SocketAddr>,
    /// Media counters, filled in when listed.
    #[serde(default)]
    pub media: LegStats,
    /// The last transfer's outcome (`202 Accepted`, `NOTIFY 200`, `failed: 486`…).
    pub transfer: Option<String>,
}

impl CallView {
    /// A call that has just arrived (or is being placed): ringing, nothing negotiated yet.
    pub fn new(call_id: String, from: String, to: String, peer: SocketAddr) -> Self {
        Self {
            id: 0,
            call_id,
            from,
            to,
            peer,
            state: CallState::Ringing,
            started_at: Timestamp::now(),
            answered_at: None,
            codec: None,
            local_rtp: None,
            remote_rtp: None,
            media: LegStats::default(),
            transfer: None,
        }
    }
}

/// One call's place in the table.
pub struct CallSlot {
    /// The call's id.
    pub id: u64,
    view: Mutex<CallView>,
    leg: Mutex<Option<Box<dyn MediaLeg>>>,
    commands: UnboundedSender<CallCommand>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CallSlot {
    /// Changes the listed view.
    pub fn update(&self, f: impl FnOnce(&mut CallView)) {
        f(&mut lock(&self.view));
    }

    /// The listed view now.
    pub fn view(&self) -> CallView {
        let mut v = lock(&self.view).clone();
        if let Some(leg) = lock(&self.leg).as_ref() {
            v.media = leg.stats();
        }
        v
    }

    /// Installs the call's media leg (dropped, and its port freed, when the slot goes).
    pub fn set_leg(&self, leg: Box<dyn MediaLeg>) {
        *lock(&self.leg) = Some(leg);
    }

    /// Runs `f` on the media leg, if there is one.
    pub fn with_leg<R>(&self, f: impl FnOnce(&mut dyn MediaLeg) -> R) -> Option<R> {
        lock(&self.leg).as_mut().map(|l| f(l.as_mut()))
    }

    /// Drops the media leg now (the call is over).
    pub fn drop_leg(&self) {
        lock(&self.leg).take();
    }
}

/// The live calls.
pub struct CallTable {
    calls: Mutex<BTreeMap<u64, Arc<CallSlot>>>,
    next_id: AtomicU64,
    max: usize,
    closing: AtomicBool,
    shedding: AtomicBool,
    shed: AtomicU64,
    emptied: Notify,
}

impl CallTable {
    /// A table admitting at most `max` calls at once.
    pub fn new(max: usize) -> Self {
        Self {
            calls: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            max,
            closing: AtomicBool::new(false),
            shedding: AtomicBool::new(false),
            shed: AtomicU64::new(0),
            emptied: Notify::new(),
        }
    }

    /// Admits a new call, or says why not.
    pub fn admit(&self, view: CallView, commands: UnboundedSender<CallCommand>) -> Result<Arc<CallSlot>, AdmitError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(AdmitError::Closing);
        }
        if self.shedding.load(Ordering::Relaxed) {
            self.shed.fetch_add(1, Ordering::Relaxed);
            return Err(AdmitError::Overloaded);
        }
        let mut calls = lock(&self.calls);
        if calls.len() >= self.max {
            return Err(AdmitError::Full(self.max));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot =
            Arc::new(CallSlot { id, view: Mutex::new(CallView { id, ..view }), leg: Mutex::new(None), commands });
        calls.insert(id, slot.clone());
        Ok(slot)
    }

    /// Starts or stops refusing new calls because the hub is overloaded; returns how many were
    /// refused since shedding last started.
    pub fn set_shedding(&self, on: bool) -> u64 {
        let refused = self.shed.swap(0, Ordering::Relaxed);
        self.shedding.store(on, Ordering::Relaxed);
        if on { 0 } else { refused }
    }

    /// Removes a call that has ended.
    pub fn remove(&self, id: u64) {
        let mut calls = lock(&self.calls);
        if let Some(slot) = calls.remove(&id) {
            slot.drop_leg();
        }
        if calls.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    /// How many calls are live.
    pub fn len(&self) -> usize {
        lock(&self.calls).len()
    }

    /// Whether no call is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live call, oldest first.
    pub fn list(&self) -> Vec<CallView> {
        let slots: Vec<Arc<CallSlot>> = lock(&self.calls).values().cloned().collect();
        slots.iter().map(|s| s.view()).collect()
    }

    /// Sends `command` to call `id`; false when there is no such call.
    pub fn command(&self, id: u64, command: CallCommand) -> bool {
        let slot = lock(&self.calls).get(&id).cloned();
        slot.is_some_and(|s| s.commands.send(command).is_ok())
    }

    /// Refuses new calls and hangs up every live one; returns once all are gone or after
    /// `within`.
    pub async fn close(&self, within: std::time::Duration) {
        self.closing.store(true, Ordering::Release);
        let slots: Vec<Arc<CallSlot>> = lock(&self.calls).values().cloned().collect();
        for slot in slots {
            let _ = slot.commands.send(CallCommand::Hangup { reason: "the hub is shutting down".into() });
        }
        let _ = tokio::time::timeout(within, async {
            loop {
                let emptied = self.emptied.notified();
                if self.is_empty() {
                    return;
                }
                emptied.await;
            }
        })
        .await;
    }
}

/// The parts of [`MediaParams`] a listing shows.
pub fn show_params(view: &mut CallView, params: &MediaParams) {
    view.codec = Some(params.codec.name().to_owned());
    view.remote_rtp = params.remote;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> CallView {
        CallView::new("c".into(), "sip:a@x".into(), "100".into(), "127.0.0.1:5060".parse().unwrap())
    }

    #[tokio::test]
    async fn the_limit_admits_exactly_max_and_frees_on_remove() {
        let table = CallTable::new(2);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let a = table.admit(view(), tx.clone()).unwrap();
        let _b = table.admit(view(), tx.clone()).unwrap();
        assert_eq!(table.admit(view(), tx.clone()).err(), Some(AdmitError::Full(2)));
        table.remove(a.id);
        assert!(table.admit(view(), tx.clone()).is_ok());
        assert_eq!(table.list().len(), 2);
    }

    #[tokio::test]
    async fn shedding_refuses_new_calls_counts_them_and_keeps_live_ones() {
        let table = CallTable::new(10);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let live = table.admit(view(), tx.clone()).unwrap();
        assert_eq!(table.set_shedding(true), 0);
        for _ in 0..3 {
            assert_eq!(table.admit(view(), tx.clone()).err(), Some(AdmitError::Overloaded));
        }
        assert_eq!(table.list().len(), 1, "the live call stays");
        assert_eq!(table.set_shedding(false), 3);
        assert!(table.admit(view(), tx.clone()).is_ok());
        table.remove(live.id);
    }

    #[tokio::test]
    async fn closing_refuses_new_calls_and_asks_live_ones_to_hang_up() {
        let table = Arc::new(CallTable::new(10));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let slot = table.admit(view(), tx.clone()).unwrap();
        let t = table.clone();
        let closer = tokio::spawn(async move { t.close(std::time::Duration::from_secs(5)).await });
        assert!(matches!(rx.recv().await, Some(CallCommand::Hangup { .. })));
        assert_eq!(table.admit(view(), tx).err(), Some(AdmitError::Closing));
        table.remove(slot.id);
        closer.await.unwrap();
        assert!(table.is_empty());
    }
}
