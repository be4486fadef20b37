//! The media engine: what every call's audio shares (ports, the pacer, the prompt cache) and
//! how a call's leg and its [`Channel`] are made.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::channel::Channel;
use super::codec::{self, Encoder};
use super::leg::{EngineLeg, Inbound, LegShared, RecvState, Transport, lock, receive};
use super::pacer::Pacer;
use super::ports::PortRange;
use super::prompt::PromptCache;
use super::recorder::RecordOptions;
use super::rtp_stats::ReceiveStats;
use super::socket::{RtpSink, RtpSocket};
use crate::sip::media_port::{CallInfo, LegEvents, MediaError};
use crate::sip::sdp::AudioCodec;

/// How the engine behaves, from `[media]` and `[voicemail]`.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Where prompt files named by apps and scripts are looked up.
    pub prompts_dir: PathBuf,
    /// Where recordings are written.
    pub recordings_dir: PathBuf,
    /// Listen for DTMF tones in the audio of callers that negotiated no RFC 4733.
    pub inband_dtmf: bool,
    /// Recording limits used when an app asks for none.
    pub record: RecordOptions,
    /// Pacer worker threads.
    pub pacer_threads: usize,
}

/// A silence frame's codec name and packet time.
type SilenceKey = (&'static str, u32);

/// Shared by every call's audio.
pub struct Engine {
    ports: PortRange,
    /// The scheduler of every outgoing stream.
    pub pacer: Pacer,
    /// Prompts decoded once and encoded once per codec, for every call.
    pub prompts: PromptCache,
    /// Settings.
    pub settings: EngineSettings,
    pub(super) cname: String,
    silences: Mutex<HashMap<SilenceKey, Arc<[u8]>>>,
}

impl Engine {
    /// An engine binding RTP ports from `ports`.
    pub fn new(ports: PortRange, settings: EngineSettings) -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            ports,
            pacer: Pacer::start(settings.pacer_threads)?,
            prompts: PromptCache::default(),
            cname: format!("hub-{:08x}@hub", rand::random::<u32>()),
            settings,
            silences: Mutex::new(HashMap::new()),
        }))
    }

    /// One frame of silence in `codec`, made once and shared.
    pub fn silence(&self, codec: AudioCodec, ptime_ms: u32) -> Option<Arc<[u8]>> {
        let mut cache = lock(&self.silences);
        if let Some(frame) = cache.get(&(codec.name(), ptime_ms)) {
            return Some(frame.clone());
        }
        let pcm = vec![0i16; codec::frame_samples(codec::pcm_rate(codec), ptime_ms)];
        let mut frame = Vec::new();
        Encoder::new(codec).ok()?.encode(&pcm, &mut frame).ok()?;
        let frame: Arc<[u8]> = Arc::from(frame);
        cache.insert((codec.name(), ptime_ms), frame.clone());
        Some(frame)
    }

    /// One UDP socket from the RTP range (a WebRTC peer needs one port for everything).
    pub fn bind_one(&self) -> std::io::Result<std::net::UdpSocket> {
        self.ports.bind()
    }

    /// Opens a call's audio: binds its RTP and RTCP ports and starts its receive task. The leg
    /// goes to the SIP layer, the channel to whatever drives the call (an app, a script).
    pub fn open(self: &Arc<Self>, call: &CallInfo, events: LegEvents) -> Result<(EngineLeg, Channel), MediaError> {
        let (rtp, rtcp) = self.ports.bind_pair()?;
        let local = rtp.local_addr()?;
        // One descriptor per socket, shared by the receive task and the pacer.
        let rtp = Arc::new(RtpSocket::new(rtp)?);
        let rtcp = Arc::new(RtpSocket::new(rtcp)?);
        let inbound = Inbound::Udp(rtp.clone(), rtcp.clone());
        Ok(self.open_with(call, events, local, Transport::Udp { rtp, rtcp }, inbound))
    }

    /// Opens the audio of a call whose packets travel through a WebRTC peer connection: the
    /// pacer's packets go to `sink`, the caller's decrypted RTP comes from `inbound`. `tag`
    /// stands for the peer's address in the leg's parameters (the peer connection, not the
    /// leg, knows where the browser is).
    pub fn open_packets(
        self: &Arc<Self>,
        call: &CallInfo,
        events: LegEvents,
        sink: Arc<dyn RtpSink>,
        inbound: mpsc::Receiver<bytes::Bytes>,
        tag: std::net::SocketAddr,
    ) -> (EngineLeg, Channel) {
        self.open_with(call, events, tag, Transport::Packets { sink }, Inbound::Packets(inbound, tag))
    }

    fn open_with(
        self: &Arc<Self>,
        call: &CallInfo,
        events: LegEvents,
        local: std::net::SocketAddr,
        transport: Transport,
        inbound: Inbound,
    ) -> (EngineLeg, Channel) {
        let (digits_tx, digits_rx) = mpsc::unbounded_channel();
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (params, _) = watch::channel(None);
        let shared = Arc::new(LegShared {
            counters: Arc::default(),
            recv: Mutex::new(RecvState {
                stats: ReceiveStats::new(8000),
                last_in: Instant::now(),
                digits: String::new(),
                peer_sr: None,
                remote_view: None,
                codec: None,
            }),
            stream: Mutex::new(None),
            params,
            digits: digits_tx,
            commands: commands_tx,
        });
        let stop = CancellationToken::new();
        let span = tracing::debug_span!("media", call = %call.id, %local);
        tokio::spawn(tracing::Instrument::instrument(
            receive(
                inbound,
                shared.clone(),
                // Subscribed here, not in the task: an answer given before the task first runs
                // must still count as a change.
                shared.params.subscribe(),
                commands_rx,
                self.settings.inband_dtmf,
                stop.clone(),
            ),
            span,
        ));
        let channel = Channel::new(call.clone(), self.clone(), shared.clone(), digits_rx, events, stop.clone());
        let leg = EngineLeg { local, shared, engine: self.clone(), transport, stop };
        (leg, channel)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sip::media_port::MediaLeg;
    use crate::sip::sdp::{Direction, MediaParams};

    /// A call from a test-held socket, answered with PCMA on a one-thread pacer; the receive
    /// task may not have run yet (on a current-thread runtime it has not).
    fn answered_call(ports: u16) -> (EngineLeg, Channel, std::net::UdpSocket) {
        let settings = EngineSettings {
            prompts_dir: "prompts".into(),
            recordings_dir: "recordings".into(),
            inband_dtmf: true,
            record: RecordOptions::default(),
            pacer_threads: 1,
        };
        let engine = Engine::new(PortRange::new("127.0.0.1".parse().unwrap(), ports, ports + 999), settings).unwrap();
        let caller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = caller.local_addr().unwrap();
        let call = CallInfo {
            id: "1".into(),
            call_id: "c".into(),
            from: "a".into(),
            to: "b".into(),
            peer,
            headers: Vec::new(),
        };
        let (events, _rx) = mpsc::unbounded_channel();
        let (mut leg, channel) = engine.open(&call, events).unwrap();
        leg.start(&MediaParams {
            remote: Some(peer),
            codec: AudioCodec::Pcma,
            payload_type: 8,
            ptime_ms: 20,
            dtmf_payload_type: None,
            direction: Direction::SendRecv,
        });
        (leg, channel, caller)
    }

    #[tokio::test]
    async fn a_call_answered_before_its_receive_task_first_runs_still_hears_the_caller() {
        // On this single-threaded runtime the receive task has not run yet: answered first.
        let (leg, _channel, caller) = answered_call(42_000);
        for seq in 0..5u16 {
            let mut p = vec![0x80, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            p.extend_from_slice(&[0xd5; 160]);
            caller.send_to(&p, leg.local_rtp()).unwrap();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while leg.stats().packets_in < 4 {
            assert!(tokio::time::Instant::now() < deadline, "packets ignored: {:?}", leg.stats());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn rtcp_reports_go_where_the_callers_reports_come_from() {
        let (leg, _channel, _caller) = answered_call(43_000);
        // Behind NAT the caller's RTCP comes from some port, not its RTP port + 1.
        let nat_rtcp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        nat_rtcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let hub_ssrc = lock(&leg.shared.stream).as_ref().unwrap().ssrc();
        let report = super::super::rtcp::build_report(0x0bad_cafe, "caller", None, None, None).unwrap();
        let hub_rtcp = std::net::SocketAddr::new(leg.local_rtp().ip(), leg.local_rtp().port() + 1);
        nat_rtcp.send_to(&report, hub_rtcp).unwrap();
        // The hub's next report (every 2.5–7.5 s at first) arrives at the learnt address.
        let mut buf = [0u8; 1500];
        let (bytes, from) =
            tokio::task::spawn_blocking(move || nat_rtcp.recv_from(&mut buf).map(|(n, f)| (buf[..n].to_vec(), f)))
                .await
                .unwrap()
                .expect("the hub's RTCP report reaches the address the caller's came from");
        assert_eq!(from, hub_rtcp);
        let packets = rtc_rtcp::packet::unmarshal(&mut &bytes[..]).unwrap();
        let senders: Vec<u32> = packets.iter().flat_map(|p| p.destination_ssrc()).collect();
        assert!(!packets.is_empty(), "a report from the hub's stream {hub_ssrc:08x}: {senders:?}");
    }
}
