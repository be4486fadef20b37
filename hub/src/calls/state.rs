//! The call state machine, as plain data: no sockets, no timers, no clock of its own.
//!
//! ```text
//!            accept(d) by a ringing device
//!   Ringing ───────────────────────────────► Answered{by: d} ──hang-up by either──► Ended(completed)
//!     │ decline / hang-up by a ringing device ─► Ended(declined)     │ either device gone ─► Ended(connection_lost)
//!     │ hang-up or gone caller ─────────────► Ended(cancelled)
//!     │ ring timeout / last ringing device gone ─► Ended(no_answer)
//! ```
//!
//! [`Call::step`] applies one input and says whom to tell what; the controller does the
//! telling, the timers and the record. Every path ends in `Ended`, after which every input
//! is refused (or ignored, for timers and disconnects), so nothing can revive a call.

use crate::model::{CallId, CallOutcome, Timestamp, UserId};

/// A connected browser tab. Unique for the life of the process; never reused.
pub type DeviceId = u64;

/// Where a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The callee's devices ring.
    Ringing,
    /// Device `by` of the callee answered; media flows peer to peer.
    Answered {
        /// The winning device.
        by: DeviceId,
    },
    /// Over.
    Ended(EndReason),
}

/// Why a call ended, as told to the devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Answered, then hung up.
    Completed,
    /// The callee declined.
    Declined,
    /// Nobody answered in time.
    NoAnswer,
    /// The caller gave up before an answer.
    Cancelled,
    /// Every device of the callee was in another call.
    Busy,
    /// The callee had no device online.
    Offline,
    /// A device's connection dropped during the call.
    ConnectionLost,
}

impl EndReason {
    /// The outcome kept in the call log.
    pub fn outcome(self) -> CallOutcome {
        match self {
            EndReason::Completed => CallOutcome::Completed,
            EndReason::Declined => CallOutcome::Declined,
            EndReason::NoAnswer => CallOutcome::NoAnswer,
            EndReason::Cancelled => CallOutcome::Cancelled,
            EndReason::Busy => CallOutcome::Busy,
            EndReason::Offline => CallOutcome::Offline,
            EndReason::ConnectionLost => CallOutcome::Failed,
        }
    }
}

/// Something that happens to a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A device accepts.
    Accept(DeviceId),
    /// A device declines.
    Decline(DeviceId),
    /// A device hangs up (the caller before an answer: cancel).
    Hangup(DeviceId),
    /// The ring timer fired.
    RingTimeout,
    /// A device's connection closed.
    DeviceGone(DeviceId),
    /// A device sends signaling (offer, answer, ICE) for its peer.
    Relay(DeviceId),
}

/// What a device is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Your accept won.
    Accepted,
    /// (To the caller) the callee answered: start negotiating.
    Answered,
    /// Another device of yours answered: stop ringing.
    AnsweredElsewhere,
    /// The call is over.
    Ended(EndReason),
    /// Your peer's signaling message (the controller forwards its content).
    Relay,
}

/// Why an input is not acceptable in the call's current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The device has no part in this call (or no longer: it stopped ringing).
    NotYourCall,
    /// Another device answered first.
    AlreadyAnswered,
    /// Signaling before the call was answered.
    NotAnswered,
    /// The call is over.
    Ended,
}

/// One call and everything needed to write its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Call id.
    pub id: CallId,
    /// The caller's device.
    pub caller: DeviceId,
    /// The caller.
    pub caller_user: UserId,
    /// The callee.
    pub callee_user: UserId,
    /// Callee devices still ringing.
    pub ringing: Vec<DeviceId>,
    /// Every device that took part (for the record).
    pub devices: Vec<DeviceId>,
    /// Whether the caller asked for video.
    pub video: bool,
    /// Where it is.
    pub phase: Phase,
    /// When the caller asked.
    pub started_at: Timestamp,
    /// When a device answered.
    pub answered_at: Option<Timestamp>,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
}

type Step = Result<Vec<(DeviceId, Notice)>, Refusal>;

impl Call {
    /// A call ringing `devices` of `callee_user`.
    pub fn ring(
        id: CallId,
        caller: DeviceId,
        caller_user: UserId,
        callee_user: UserId,
        devices: Vec<DeviceId>,
        video: bool,
        now: Timestamp,
    ) -> Self {
        let mut all = vec![caller];
        all.extend(&devices);
        Self {
            id,
            caller,
            caller_user,
            callee_user,
            ringing: devices,
            devices: all,
            video,
            phase: Phase::Ringing,
            started_at: now,
            answered_at: None,
            ended_at: None,
        }
    }

    /// A call that ends before ringing anything (callee offline or busy).
    pub fn unreachable(
        id: CallId,
        caller: DeviceId,
        caller_user: UserId,
        callee_user: UserId,
        reason: EndReason,
        now: Timestamp,
    ) -> Self {
        let mut call = Self::ring(id, caller, caller_user, callee_user, Vec::new(), false, now);
        call.phase = Phase::Ended(reason);
        call.ended_at = Some(now);
        call
    }

    /// Whether the call is over.
    pub fn is_over(&self) -> bool {
        matches!(self.phase, Phase::Ended(_))
    }

    /// The other end of an answered call, from `device`'s point of view.
    pub fn peer_of(&self, device: DeviceId) -> Option<DeviceId> {
        match self.phase {
            Phase::Answered { by } if device == self.caller => Some(by),
            Phase::Answered { by } if device == by => Some(self.caller),
            _ => None,
        }
    }

    fn end(&mut self, reason: EndReason, tell: Vec<DeviceId>, now: Timestamp) -> Step {
        self.phase = Phase::Ended(reason);
        self.ended_at = Some(now);
        self.ringing.clear();
        Ok(tell.into_iter().map(|d| (d, Notice::Ended(reason))).collect())
    }

    /// Applies `input` at `now`; returns whom to tell what, or why the input is refused
    /// (then nothing changed).
    pub fn step(&mut self, input: Input, now: Timestamp) -> Step {
        match self.phase {
            Phase::Ringing => self.step_ringing(input, now),
            Phase::Answered { by } => self.step_answered(by, input, now),
            Phase::Ended(_) => match input {
                Input::RingTimeout | Input::DeviceGone(_) => Ok(Vec::new()),
                _ => Err(Refusal::Ended),
            },
        }
    }

    fn step_ringing(&mut self, input: Input, now: Timestamp) -> Step {
        let everyone = |c: &Call| {
            let mut v = vec![c.caller];
            v.extend(&c.ringing);
            v
        };
        match input {
            Input::Accept(d) if self.ringing.contains(&d) => {
                let mut tell = vec![(d, Notice::Accepted), (self.caller, Notice::Answered)];
                tell.extend(self.ringing.iter().filter(|&&o| o != d).map(|&o| (o, Notice::AnsweredElsewhere)));
                self.phase = Phase::Answered { by: d };
                self.answered_at = Some(now);
                self.ringing.clear();
                Ok(tell)
            }
            Input::Decline(d) | Input::Hangup(d) if self.ringing.contains(&d) => {
                let tell = everyone(self);
                self.end(EndReason::Declined, tell, now)
            }
            Input::Hangup(d) if d == self.caller => {
                let tell = everyone(self);
                self.end(EndReason::Cancelled, tell, now)
            }
            Input::RingTimeout => {
                let tell = everyone(self);
                self.end(EndReason::NoAnswer, tell, now)
            }
            Input::DeviceGone(d) if d == self.caller => {
                let tell = self.ringing.clone();
                self.end(EndReason::Cancelled, tell, now)
            }
            Input::DeviceGone(d) if self.ringing.contains(&d) => {
                self.ringing.retain(|&o| o != d);
                if self.ringing.is_empty() {
                    self.end(EndReason::NoAnswer, vec![self.caller], now)
                } else {
                    Ok(Vec::new())
                }
            }
            Input::DeviceGone(_) => Ok(Vec::new()),
            Input::Relay(d) if d == self.caller || self.ringing.contains(&d) => Err(Refusal::NotAnswered),
            Input::Accept(_) | Input::Decline(_) | Input::Hangup(_) | Input::Relay(_) => Err(Refusal::NotYourCall),
        }
    }

    fn step_answered(&mut self, by: DeviceId, input: Input, now: Timestamp) -> Step {
        let in_call = |d: DeviceId| d == self.caller || d == by;
        match input {
            Input::Hangup(d) if in_call(d) => self.end(EndReason::Completed, vec![self.caller, by], now),
            Input::DeviceGone(d) if in_call(d) => {
                let other = if d == self.caller { by } else { self.caller };
                self.end(EndReason::ConnectionLost, vec![other], now)
            }
            Input::Relay(d) if in_call(d) => Ok(vec![(if d == self.caller { by } else { self.caller }, Notice::Relay)]),
            Input::RingTimeout | Input::DeviceGone(_) => Ok(Vec::new()),
            // A device that rang too and was slower; anyone else has no part in the call.
            Input::Accept(d) | Input::Decline(d) if d != self.caller && self.devices.contains(&d) => {
                Err(Refusal::AlreadyAnswered)
            }
            Input::Accept(_) | Input::Decline(_) | Input::Hangup(_) | Input::Relay(_) => Err(Refusal::NotYourCall),
        }
    }
}

#[cfg(test)]
mod tests;
