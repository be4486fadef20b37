//! The media engine end to end: real SIPp calls whose RTP the test plays from generated pcaps
//! (audio, RFC 4733 and in-band DTMF) to the hub's built-in apps, and a test-held RTP socket
//! that checks what the hub plays: the prompt's frames, numbering and tone, and the shared
//! prompt cache.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hub::media::codec::{Decoder, Encoder};
use hub::media::goertzel::dtmf_tone;
use hub::sip::sdp::AudioCodec;

use crate::common::pcap::{self, RtpPacket};
use crate::common::sipp::Sipp;
use crate::common::{Hub, WAIT, event_field, run, text};
use crate::sip_ua::passed;

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sipp");

/// A hub with its SIP user agent on and `numbers` (TOML lines of `[media.numbers]`).
fn hub_with_apps(dir: &Path, numbers: &str) -> (Hub, SocketAddr) {
    std::fs::create_dir_all(dir.join("prompts")).unwrap();
    std::fs::write(dir.join("hub.toml"), format!("[media.numbers]\n{numbers}\n")).unwrap();
    let hub = Hub::start(dir, &[], &[("HUB_SIP__ENABLED", "true")]);
    let line = hub.wait_for("SIP user agent listening");
    let addr = event_field(&line, "SIP user agent listening", "udp").unwrap().parse().unwrap();
    (hub, addr)
}

/// A scenario file in `dir` that offers `media` (its port `[rtp_port]`, a socket the test
/// holds) and waits for the hub to hang up. The test plays the caller's RTP itself, from the
/// same generated packets it writes as a pcap: it knows when the call is up and where the
/// hub's RTP port is, so nothing is sent before the hub can take it.
fn call_scenario(dir: &Path, media: &str) -> PathBuf {
    let template = std::fs::read_to_string(Path::new(SCENARIOS).join("uac_play_pcap.xml.in")).unwrap();
    let start = template.find("  <nop>").unwrap();
    let end = template.find("  </nop>\n").unwrap() + "  </nop>\n".len();
    let text = format!("{}{}", &template[..start], &template[end..]).replace("@MEDIA@", media);
    let path = dir.join("scenario.xml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts `scenario` to `number`, waits for the call, then plays `packets` to the hub's RTP port
/// from `media`; returns SIPp, which ends when the hub hangs up.
fn call_and_play(
    hub: &Hub,
    addr: SocketAddr,
    scenario: &Path,
    number: &str,
    media: &UdpSocket,
    packets: &[RtpPacket],
) -> Sipp {
    let port = media.local_addr().unwrap().port().to_string();
    let sipp = Sipp::spawn(scenario.to_str().unwrap(), Some(addr), &["-s", number, "-key", "rtp_port", &port]);
    let up = hub.wait_for("call up");
    let hub_rtp: SocketAddr = event_field(&up, "call up", "local_rtp").unwrap().parse().unwrap();
    pcap::play(packets, 0x1234_5678, media, hub_rtp);
    sipp
}

fn tone(hz: f64, ms: usize, amplitude: f64) -> Vec<i16> {
    (0..ms * 8).map(|i| (amplitude * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16).collect()
}

/// Relative power of `hz` in `pcm` (8 kHz): Goertzel, normalised by the block's energy.
fn power_at(pcm: &[i16], hz: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / 8000.0).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in pcm {
        let s = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let energy: f64 = pcm.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    power / (energy * pcm.len() as f64 / 2.0).max(1.0)
}

fn encode(codec: AudioCodec) -> impl Fn(&[i16]) -> Vec<u8> {
    move |frame| {
        let mut out = Vec::new();
        Encoder::new(codec).unwrap().encode(frame, &mut out).unwrap();
        out
    }
}

/// Samples of a 16-bit mono WAV as the hub's recorder writes it.
fn wav_samples(path: &Path) -> (u32, Vec<i16>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"RIFF", "{}", path.display());
    let rate = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    let data = bytes.windows(4).position(|w| w == b"data").expect("a data chunk") + 8;
    (rate, bytes[data..].chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect())
}

/// RFC 4733 packets for one digit starting at `at_ms`, on RTP timestamp `ts`.
fn telephone_event(event: u8, at_ms: u64, seq: u16, ts: u32) -> Vec<RtpPacket> {
    let mut out = Vec::new();
    for k in 0..6u16 {
        let end = k >= 3;
        let duration = 160 * (k.min(3) + 1);
        out.push(RtpPacket {
            at_ms: at_ms + 20 * u64::from(k),
            pt: 101,
            marker: k == 0,
            seq: seq.wrapping_add(k),
            ts,
            payload: vec![event, if end { 0x8a } else { 0x0a }, (duration >> 8) as u8, duration as u8],
        });
    }
    out
}

#[test]
fn a_caller_is_recorded_until_the_hash_key_and_hears_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_apps(dir.path(), "\"*45\" = { app = \"record\" }");
    // 3 s of a 1 kHz tone, then '#' as RFC 4733 events, then silence the hub never needs.
    let mut packets = pcap::audio_packets(&tone(1000.0, 3000, 6000.0), 8, encode(AudioCodec::Pcma), 100, 1600);
    packets.extend(telephone_event(11, 3000, 250, 1600 + 150 * 160));
    // Kept as a pcap too, for `sipp … play_pcap_audio` by hand.
    pcap::write(&dir.path().join("caller.pcap"), 0x1234_5678, &packets);
    let media = "      m=audio [rtp_port] RTP/AVP 8 101\n      a=rtpmap:8 PCMA/8000\n      \
                 a=rtpmap:101 telephone-event/8000\n      a=fmtp:101 0-16\n      a=ptime:20";
    let scenario = call_scenario(dir.path(), media);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sipp = call_and_play(&hub, addr, &scenario, "*45", &socket, &packets);
    passed(&sipp.wait(), &hub);
    let recorded = hub.wait_for("recorded");
    assert_eq!(event_field(&recorded, "recorded", "reason").as_deref(), Some("Requested"), "{recorded}");
    let path = PathBuf::from(event_field(&recorded, "recorded", "path").unwrap());
    let path = if path.is_absolute() { path } else { dir.path().join(path) };
    let (rate, pcm) = wav_samples(&path);
    assert_eq!(rate, 8000);
    // The beep (250 ms) comes before recording starts, so the first part of the tone is not in
    // it (more of it on a loaded machine); the `#` at 3 s ends it.
    let secs = pcm.len() as f64 / 8000.0;
    assert!((1.5..=3.1).contains(&secs), "recorded {secs} s");
    let middle = &pcm[pcm.len() / 4..pcm.len() * 3 / 4];
    let rms = (middle.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / middle.len() as f64).sqrt();
    assert!(rms > 2000.0, "not silence: rms {rms}");
    assert!(power_at(middle, 1000.0) > 0.8, "the caller's 1 kHz tone: {}", power_at(middle, 1000.0));
    assert!(power_at(middle, 1500.0) < 0.05);
    let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".partial")), "no temporary file left: {names:?}");
    let ended = hub.wait_for("call ended");
    assert_eq!(event_field(&ended, "call ended", "digits").as_deref(), Some("#"), "{ended}");
}

#[test]
fn in_band_dtmf_in_the_callers_audio_is_heard_digit_by_digit() {
    let dir = tempfile::tempdir().unwrap();
    let prompt = dir.path().join("prompts/quiet.wav");
    std::fs::create_dir_all(prompt.parent().unwrap()).unwrap();
    write_wav(&prompt, 8000, 1, &vec![0i16; 8000 * 8]);
    let (hub, addr) = hub_with_apps(dir.path(), "\"701\" = { app = \"playback\", prompt = \"quiet.wav\" }");
    // All 16 digits, 80 ms tones with 60 ms gaps, over noise (about 20 dB below the tones).
    let digits = "123A456B789C*0#D";
    let mut pcm = vec![0i16; 8 * 300];
    for d in digits.chars() {
        pcm.extend(dtmf_tone(d, 80, 8000, 5000.0));
        pcm.extend(std::iter::repeat_n(0, 8 * 60));
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for s in &mut pcm {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *s = s.saturating_add((seed % 1001) as i16 - 500);
    }
    let packets = pcap::audio_packets(&pcm, 8, encode(AudioCodec::Pcma), 7, 0);
    pcap::write(&dir.path().join("inband.pcap"), 0x0bad_cafe, &packets);
    // No telephone-event offered: a POTS gateway's call, whose digits are tones in the audio.
    let media = "      m=audio [rtp_port] RTP/AVP 8\n      a=rtpmap:8 PCMA/8000\n      a=ptime:20";
    let scenario = call_scenario(dir.path(), media);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sipp = call_and_play(&hub, addr, &scenario, "701", &socket, &packets);
    passed(&sipp.wait(), &hub);
    let ended = hub.wait_for("call ended");
    assert_eq!(event_field(&ended, "call ended", "digits").as_deref(), Some(digits), "{ended}");
    // RFC 3550 receive statistics of SIPp's stream: every packet counted, none lost on loopback.
    let field = |f: &str| event_field(&ended, "call ended", f).unwrap_or_default();
    assert!(field("packets_in").parse::<u64>().unwrap() >= 120, "{ended}");
    assert_eq!(field("lost"), "0", "{ended}");
    assert!(field("jitter_ms").parse::<f64>().is_ok(), "{ended}");
}

fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
    let mut b = Vec::new();
    let data = u32::try_from(samples.len() * 2).unwrap();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
    b.extend_from_slice(&(2 * channels).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

struct Heard {
    seq: u16,
    ts: u32,
    ssrc: u32,
    marker: bool,
    pcm: Vec<i16>,
}

/// Reads the hub's RTP on `media` until `until` says stop or the wait runs out.
fn listen(media: &UdpSocket, decoder: &mut Decoder, pt: u8, until: impl Fn(&[Heard]) -> bool) -> Vec<Heard> {
    let mut heard = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 1500];
    while !until(&heard) && Instant::now() < deadline {
        let Ok(n) = media.recv(&mut buf) else { continue };
        let b = &buf[..n];
        if b.len() < 12 || b[1] & 0x7f != pt {
            continue;
        }
        let mut pcm = Vec::new();
        decoder.decode(&b[12..], &mut pcm).unwrap();
        heard.push(Heard {
            seq: u16::from_be_bytes([b[2], b[3]]),
            ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            marker: b[1] & 0x80 != 0,
            pcm,
        });
    }
    heard
}

#[test]
fn a_prompt_is_heard_on_the_20_ms_grid_and_decoded_once_for_two_calls() {
    let dir = tempfile::tempdir().unwrap();
    // 44.1 kHz stereo: resampled to 8 kHz and mixed to mono before it is encoded.
    let prompt = dir.path().join("prompts/welcome.wav");
    std::fs::create_dir_all(prompt.parent().unwrap()).unwrap();
    let mut stereo = Vec::new();
    for i in 0..44_100 {
        let s = (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(i) / 44_100.0).sin()) as i16;
        stereo.extend([s, s]);
    }
    write_wav(&prompt, 44_100, 2, &stereo);
    let (hub, addr) = hub_with_apps(dir.path(), "\"702\" = { app = \"playback\", prompt = \"welcome.wav\" }");
    for call in 0..2 {
        let media = UdpSocket::bind("127.0.0.1:0").unwrap();
        media.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let port = media.local_addr().unwrap().port().to_string();
        let sipp = Sipp::spawn("uac_echo_test_media.xml", Some(addr), &["-s", "702", "-key", "rtp_port", &port]);
        let mut decoder = Decoder::new(AudioCodec::Pcma, 8000).unwrap();
        // The prompt is 1 s: 50 frames of tone, then the hub hangs up (SIPp answers the BYE).
        let loud = |h: &Heard| h.pcm.iter().map(|&x| i32::from(x).abs()).max().unwrap_or(0) > 3000;
        let heard = listen(&media, &mut decoder, 8, |h| h.iter().filter(|h| loud(h)).count() >= 50);
        passed(&sipp.wait(), &hub);
        let tone: Vec<&Heard> = heard.iter().filter(|h| loud(h)).collect();
        assert!(
            tone.len() >= 49,
            "call {call}: {} loud frames of {}\n{}",
            tone.len(),
            heard.len(),
            hub.log().join("\n")
        );
        assert!(heard[0].marker && heard[1..].iter().all(|h| !h.marker), "marker on the first packet only");
        for w in heard.windows(2) {
            assert_eq!(w[1].ssrc, w[0].ssrc);
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "no gaps");
            assert_eq!(w[1].ts.wrapping_sub(w[0].ts), 160, "20 ms of 8 kHz per packet");
        }
        let pcm: Vec<i16> = tone[5..45].iter().flat_map(|h| h.pcm.iter().copied()).collect();
        assert!(power_at(&pcm, 1000.0) > 0.8, "the prompt's 1 kHz: {}", power_at(&pcm, 1000.0));
        let _ = hub.wait_for("call ended");
    }
    let log = hub.log().join("\n");
    assert_eq!(log.matches("prompt decoded").count(), 1, "one decode for both calls\n{log}");
    assert_eq!(log.matches("prompt encoded").count(), 1, "one PCMA encoding for both calls");
}

#[test]
fn a_missing_prompt_is_a_clear_error_for_that_call_only() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, addr) = hub_with_apps(dir.path(), "\"703\" = { app = \"playback\", prompt = \"nope.wav\" }");
    let media = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = media.local_addr().unwrap().port().to_string();
    passed(&Sipp::run("uac_echo_test_media.xml", addr, &["-s", "703", "-key", "rtp_port", &port]), &hub);
    let failed = hub.wait_for("app failed");
    assert!(failed.contains("nope.wav"), "the error names the file: {failed}");
    let ended = hub.wait_for("call ended");
    assert!(ended.contains("nope.wav"), "the BYE's reason says why: {ended}");
    // The hub still answers calls.
    let out = run(dir.path(), &["sip", "status"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
}

/// A hub (SIP off) whose `[media.numbers]` a browser can dial: `*47` plays a 3 s tone, `*45`
/// is the recording test, `*43` the echo test.
fn hub_for_browsers(dir: &Path) -> Hub {
    let prompt = dir.join("prompts/tone.wav");
    std::fs::create_dir_all(prompt.parent().unwrap()).unwrap();
    write_wav(&prompt, 8000, 1, &tone(1000.0, 3000, 12_000.0));
    std::fs::write(
        dir.join("hub.toml"),
        "[media.numbers]\n\"*47\" = { app = \"playback\", prompt = \"tone.wav\" }\n\"*45\" = { app = \"record\" }\n\"*43\" = { app = \"echo\" }\n",
    )
    .unwrap();
    Hub::start(dir, &[], &[])
}

#[test]
fn a_browser_dialling_a_hub_number_hears_the_prompt_over_webrtc() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_for_browsers(dir.path());
    crate::webapp::run_scenario("ivr.mjs", &hub, &[("SCENARIO", "playback"), ("NUMBER", "*47")]);
    let ended = hub.wait_for("browser call ended");
    // The whole prompt went out on the pacer's grid, through the peer's SRTP.
    let out: u64 = event_field(&ended, "browser call ended", "packets_out").unwrap().parse().unwrap();
    assert!(out >= 145, "3 s of prompt is 150 packets; {out} sent\n{ended}");
    let codec = event_field(&ended, "browser call ended", "codec");
    assert_eq!(codec.as_deref(), Some("opus"), "{ended}");
}

#[test]
fn a_browser_sends_digits_to_a_hub_number_and_they_are_received() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_for_browsers(dir.path());
    crate::webapp::run_scenario("ivr.mjs", &hub, &[("SCENARIO", "digits"), ("NUMBER", "*45"), ("DIGITS", "12#")]);
    let ended = hub.wait_for("browser call ended");
    assert_eq!(event_field(&ended, "browser call ended", "digits").as_deref(), Some("12#"), "{ended}");
    let heard: u64 = event_field(&ended, "browser call ended", "packets_in").unwrap().parse().unwrap();
    assert!(heard > 10, "the tab's Opus reached the engine: {ended}");
}

#[test]
fn a_browser_hears_itself_on_the_echo_test_and_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_for_browsers(dir.path());
    crate::webapp::run_scenario("ivr.mjs", &hub, &[("SCENARIO", "echo"), ("NUMBER", "*43")]);
    let ended = hub.wait_for("browser call ended");
    assert_eq!(event_field(&ended, "browser call ended", "app").as_deref(), Some("echo"), "{ended}");
    let back: u64 = event_field(&ended, "browser call ended", "packets_out").unwrap().parse().unwrap();
    assert!(back > 50, "the tab's audio went back to it: {ended}");
}

/// The shipped scripts, as `[ivr] scripts_dir` of a test hub.
fn shipped_scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ivr-scripts")
}

/// A SIPp caller of `number` on a hub running the shipped scripts, where Bob has extension
/// 1001: types `digits` ahead (RFC 4733), then, once the hub records, 2 s of a 1 kHz tone and
/// `#`. Returns the hub and Bob's inbox once the message is filed.
fn leave_a_message(
    d: &Path,
    number: &str,
    digits: &[u8],
    greeting: Option<&[i16]>,
) -> (Hub, hub::model::UserId, Vec<hub::model::MailboxMessage>) {
    let espeak = std::process::Command::new("espeak-ng").arg("--version").output();
    assert!(espeak.is_ok_and(|o| o.status.success()), "espeak-ng is not installed (scripts/test installs it)");
    std::fs::create_dir_all(d.join("prompts")).unwrap();
    std::fs::write(
        d.join("hub.toml"),
        format!("[ivr]\nscripts_dir = {:?}\n[ivr.routes]\n\"800\" = \"main_menu.rhai\"\n", shipped_scripts()),
    )
    .unwrap();
    let add =
        run(d, &["users", "add", "--username", "bob", "--name", "Bob Builder", "--extension", "1001", "--json"], &[]);
    assert!(add.status.success(), "{:?}", text(&add));
    if let Some(pcm) = greeting {
        // Where the web app keeps a greeting Bob recorded in the browser (sent as WAV).
        let bob: serde_json::Value = serde_json::from_slice(&add.stdout).unwrap();
        let path = d.join("recordings/greetings").join(format!("{}.wav", bob["id"].as_str().unwrap()));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_wav(&path, 16_000, 1, pcm);
    }
    let hub = Hub::start(d, &[], &[("HUB_SIP__ENABLED", "true")]);
    let line = hub.wait_for("SIP user agent listening");
    let addr: SocketAddr = event_field(&line, "SIP user agent listening", "udp").unwrap().parse().unwrap();
    let media = "      m=audio [rtp_port] RTP/AVP 8 101\n      a=rtpmap:8 PCMA/8000\n      \
                 a=rtpmap:101 telephone-event/8000\n      a=fmtp:101 0-16\n      a=ptime:20";
    let scenario = call_scenario(d, media);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port().to_string();
    let sipp = Sipp::spawn(scenario.to_str().unwrap(), Some(addr), &["-s", number, "-key", "rtp_port", &port]);
    let up = hub.wait_for("call up");
    let hub_rtp: SocketAddr = event_field(&up, "call up", "local_rtp").unwrap().parse().unwrap();
    // Typed ahead, as people do: each digit barges into the prompt it interrupts.
    let mut typed = Vec::new();
    for (i, &event) in digits.iter().enumerate() {
        let at = 200 * i as u64;
        typed.extend(telephone_event(event, at, 100 + 10 * i as u16, 1600 + (at as u32) * 8));
    }
    pcap::play(&typed, 0x1234_5678, &socket, hub_rtp);
    // After the spoken greeting and the beep, the message: 2 s of a 1 kHz tone, then #.
    hub.wait_for("recording started");
    let mut message = pcap::audio_packets(&tone(1000.0, 2000, 6000.0), 8, encode(AudioCodec::Pcma), 200, 96_000);
    message.extend(telephone_event(11, 2000, 300, 96_000 + 100 * 160));
    pcap::play(&message, 0x1234_5678, &socket, hub_rtp);
    passed(&sipp.wait(), &hub);
    hub.wait_for("voicemail deposited");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (bob, messages) = rt.block_on(async {
        use hub::store::{DirectoryStore, MailboxStore};
        let store = hub::store::SqliteStore::open(&d.join("data/hub.db"), 1).await.unwrap();
        let bob = store.user_by_username("bob").await.unwrap().unwrap();
        let messages = store.messages(&bob.id, false).await.unwrap();
        (bob.id, messages)
    });
    (hub, bob, messages)
}

/// The message is Bob's, unread, 2 s long, and its file holds the caller's tone.
fn check_message(d: &Path, hub: &Hub, bob: &hub::model::UserId, messages: &[hub::model::MailboxMessage]) {
    assert_eq!(messages.len(), 1, "{}", hub.log().join("\n"));
    let m = &messages[0];
    assert_eq!((&m.owner, m.read, m.media_type.as_str()), (bob, false, "audio/wav"));
    assert!((1500..=2100).contains(&m.duration_ms), "2 s of message: {} ms", m.duration_ms);
    let (rate, pcm) = wav_samples(&d.join("recordings").join(&m.path));
    assert_eq!(rate, 8000);
    let middle = &pcm[pcm.len() / 4..pcm.len() * 3 / 4];
    assert!(power_at(middle, 1000.0) > 0.8, "the caller's tone is the message");
    let ended = hub.wait_for("script ended");
    assert!(ended.contains("HungUp"), "the script hung up after thanking the caller: {ended}");
}

#[test]
fn a_sip_caller_walks_the_main_menu_and_leaves_a_message_in_the_inbox() {
    let dir = tempfile::tempdir().unwrap();
    // 2 (leave a message), then the extension and #.
    let (hub, bob, messages) = leave_a_message(dir.path(), "800", &[2, 1, 0, 0, 1, 11], None);
    check_message(dir.path(), &hub, &bob, &messages);
}

#[test]
fn an_unanswered_call_sent_to_voicemail_prefix_and_extension_reaches_that_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    // Asterisk's dial plan dials voicemail-<extension> on the hub: nothing to type.
    let greeting: Vec<i16> = (0..16_000).map(|i| (8000.0 * (f64::from(i) * 0.1727).sin()) as i16).collect();
    let (hub, bob, messages) = leave_a_message(dir.path(), "voicemail-1001", &[], Some(&greeting));
    check_message(dir.path(), &hub, &bob, &messages);
    let up = hub.wait_for("call up");
    assert!(up.contains("voicemail-1001"), "{up}");
    // Bob's own greeting, recorded in the browser, is what the caller heard first.
    let played = hub.wait_for("recorded greeting");
    assert!(played.contains(&format!("greetings/{bob}.wav")), "{played}");
}

#[test]
fn a_script_transfers_a_browser_caller_to_a_colleague_whose_tab_rings() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("ivr-scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(
        scripts.join("reception.rhai"),
        "answer();\nlet people = directory_search(\"Bob\");\ntransfer(people[0].extension);\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("hub.toml"), "[ivr.routes]\n\"805\" = \"reception.rhai\"\n").unwrap();
    let hub = Hub::start(dir.path(), &[], &[]);
    crate::webapp::run_scenario("ivr.mjs", &hub, &[("SCENARIO", "transfer"), ("NUMBER", "805")]);
    let outcome = hub.wait_for("script ended");
    assert!(outcome.contains("Transferred"), "{outcome}");
}

#[test]
fn a_script_sees_the_callers_number_name_and_x_headers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let scripts = d.join("ivr-scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(
        scripts.join("who.rhai"),
        "answer();\nlet c = caller();\nlog(c.number, c.name, c.headers[\"X-Account\"], c.path);\nhangup();\n",
    )
    .unwrap();
    std::fs::write(d.join("hub.toml"), "[ivr.routes]\n\"806\" = \"who.rhai\"\n").unwrap();
    let hub = Hub::start(d, &[], &[("HUB_SIP__ENABLED", "true")]);
    let line = hub.wait_for("SIP user agent listening");
    let addr: SocketAddr = event_field(&line, "SIP user agent listening", "udp").unwrap().parse().unwrap();
    let media = "      m=audio [rtp_port] RTP/AVP 8\n      a=rtpmap:8 PCMA/8000\n      a=ptime:20";
    let scenario = call_scenario(d, media);
    // A caller with a display name, a number, and a header of the organisation's own.
    let text = std::fs::read_to_string(&scenario).unwrap();
    let text = text.replacen("From: <sip:sipp@", "From: \"Sipp Tester\" <sip:+15555550100@", 1).replacen(
        "Call-ID: [call_id]\n",
        "Call-ID: [call_id]\n      X-Account: 42\n",
        1,
    );
    std::fs::write(&scenario, text).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port().to_string();
    passed(&Sipp::run(scenario.to_str().unwrap(), addr, &["-s", "806", "-key", "rtp_port", &port]), &hub);
    let logged = hub.wait_for("script log");
    assert_eq!(
        event_field(&logged, "script log", "text").as_deref(),
        Some("+15555550100 Sipp Tester 42 sip"),
        "{logged}"
    );
}
