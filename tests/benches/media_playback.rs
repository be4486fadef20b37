//! Benchmark: concurrent prompt-playback calls, with pacing measured from the wire.
//!
//! Run: `cargo bench -p hub-tests --bench media_playback` (needs `sipp`).
//! A fresh `hub serve` answers number 700 with the `playback` app and a long prompt. SIPp
//! places `BENCH_MEDIA_CALLS` calls (default 5,000 G.711 µ-law; `BENCH_MEDIA_CODEC=opus` for
//! Opus) whose SDP sends the hub's RTP to this benchmark's receivers on 127.0.0.1. Once every
//! call's stream arrives, packets are captured for `BENCH_MEDIA_SECS` (default 20) with the
//! kernel's receive timestamps (`SO_TIMESTAMPNS`: taken when the hub's `sendto` put the packet
//! on loopback, so the receiver's own scheduling does not count).
//!
//! For each stream, packet *i*'s offset from its ideal time is its arrival minus its RTP
//! timestamp's time; the stream's grid is its earliest offset, and a frame is off the grid when
//! its offset exceeds that by more than 5 ms. Reported: frames, the share off the grid, the
//! deviation percentiles, packets lost (sequence gaps), the hub's CPU per call (user+system time
//! over the window) and its memory per call (RSS over an idle hub's).

mod report;

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, setsockopt, sockopt};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sipp");
/// Receivers (and SIPp instances, one per receiver).
const SINKS: usize = 2;
/// Datagrams a receiver reads per system call.
const BATCH: usize = 64;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

struct Codec {
    name: &'static str,
    pt: u8,
    rtpmap: &'static str,
    clock: u64,
}

fn main() {
    let codec = match env_or("BENCH_MEDIA_CODEC", "pcmu").as_str() {
        "opus" => Codec { name: "Opus", pt: 111, rtpmap: "opus/48000/2", clock: 48_000 },
        _ => Codec { name: "G.711 µ-law", pt: 0, rtpmap: "PCMU/8000", clock: 8000 },
    };
    let default_calls = if codec.pt == 111 { "500" } else { "5000" };
    let calls: usize = env_or("BENCH_MEDIA_CALLS", default_calls).parse().expect("BENCH_MEDIA_CALLS");
    let secs: u64 = env_or("BENCH_MEDIA_SECS", "20").parse().expect("BENCH_MEDIA_SECS");
    let threads = env_or("BENCH_MEDIA_PACER_THREADS", "2");
    let rate: usize = env_or("BENCH_MEDIA_RATE", "250").parse().expect("BENCH_MEDIA_RATE");
    println!(
        "{} prompt playback: {calls} calls, {secs} s window, pacer threads {threads}, {} cores",
        codec.name,
        cores()
    );
    // The prompt outlasts the ramp and the window.
    let prompt_secs = calls / rate + secs as usize + 40;
    let hub = start_hub(prompt_secs, &threads);
    // Warm the runtime and the prompt cache with one call, then take the idle baseline.
    let idle_rss = report::rss_kib(hub.pid());

    let stop = Arc::new(AtomicBool::new(false));
    let capturing = Arc::new(AtomicBool::new(false));
    let sinks: Vec<Sink> = (0..SINKS).map(|_| Sink::bind()).collect();
    let ports: Vec<u16> = sinks.iter().map(|s| s.port).collect();
    let handles: Vec<_> = sinks
        .into_iter()
        .map(|sink| {
            let (stop, capturing) = (stop.clone(), capturing.clone());
            std::thread::spawn(move || sink.run(&stop, &capturing))
        })
        .collect();
    let stats_dir = tempfile::tempdir().unwrap();
    let mut sipps: Vec<Child> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let n = calls / SINKS + usize::from(i < calls % SINKS);
            sipp(&hub.sip, *port, &codec, n, rate / SINKS, &stats_dir.path().join(format!("s{i}.csv")))
        })
        .collect();
    // Up when every call's stream arrives: the receivers count SSRCs.
    let started = Instant::now();
    loop {
        let seen = hub_streams(&hub);
        if seen >= calls {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "only {seen} of {calls} calls came up");
        for s in &mut sipps {
            if let Ok(Some(status)) = s.try_wait() {
                panic!("SIPp stopped early ({status}) with {seen} calls up");
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("  ramp: {calls} calls up in {:.1} s", started.elapsed().as_secs_f64());
    // Let the last streams settle on their grid, then capture.
    std::thread::sleep(Duration::from_secs(2));
    let cpu0 = report::cpu_seconds(hub.pid());
    let window = Instant::now();
    capturing.store(true, Ordering::Release);
    std::thread::sleep(Duration::from_secs(secs));
    capturing.store(false, Ordering::Release);
    let wall = window.elapsed().as_secs_f64();
    let cpu = (report::cpu_seconds(hub.pid()) - cpu0) / wall;
    let rss = report::rss_kib(hub.pid());
    stop.store(true, Ordering::Release);
    let mut packets: Vec<Packet> = Vec::new();
    for h in handles {
        packets.extend(h.join().unwrap());
    }
    for mut s in sipps {
        let _ = s.kill();
        let _ = s.wait();
    }
    let a = analyse(&packets, codec.clock);
    println!(
        "  {} frames from {} streams ({:.0} packets/s); off the 20 ms grid by >5 ms: {} ({:.3}%)",
        a.frames,
        a.streams,
        a.frames as f64 / wall,
        a.late,
        a.late as f64 * 100.0 / a.frames.max(1) as f64
    );
    println!(
        "  deviation from grid: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; lost (sequence gaps) {}",
        a.p50, a.p99, a.p999, a.max, a.lost
    );
    println!(
        "  hub CPU {:.1}% of one core ({:.4}% per call); RSS {:.0} MiB, {:.1} KiB per call over idle",
        cpu * 100.0,
        cpu * 100.0 / calls as f64,
        rss as f64 / 1024.0,
        rss.saturating_sub(idle_rss) as f64 / calls as f64
    );
}

/// Live engine streams, from `hub sip calls --json` (calls up with packets sent).
fn hub_streams(hub: &report::HubProcess) -> usize {
    hub.sip_calls().iter().filter(|c| c["state"] == "up" && c["media"]["packets_out"].as_u64().unwrap_or(0) > 0).count()
}

/// A fresh hub answering 700 with the playback app and a prompt of `prompt_secs`.
fn start_hub(prompt_secs: usize, pacer_threads: &str) -> report::HubProcess {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
    write_prompt(&dir.path().join("prompts/long.wav"), prompt_secs);
    let config = format!(
        "[media]\nrtp_port_min = 20000\nrtp_port_max = 45000\npacer_threads = {pacer_threads}\n\n\
         [media.numbers]\n\"700\" = {{ app = \"playback\", prompt = \"long.wav\" }}\n"
    );
    std::fs::write(dir.path().join("hub.toml"), config).unwrap();
    report::HubProcess::start(dir, &[("HUB_SIP__OVERLOAD_LAG", "0s")])
}

/// A 16-bit 8 kHz mono WAV of a slow sweep (speech-band energy, never silent).
fn write_prompt(path: &std::path::Path, secs: usize) {
    let n = secs * 8000;
    let mut data = Vec::with_capacity(44 + n * 2);
    let riff = |d: &mut Vec<u8>, s: &[u8]| d.extend_from_slice(s);
    riff(&mut data, b"RIFF");
    data.extend_from_slice(&u32::try_from(36 + n * 2).unwrap().to_le_bytes());
    riff(&mut data, b"WAVEfmt ");
    data.extend_from_slice(&16u32.to_le_bytes());
    data.extend_from_slice(&1u16.to_le_bytes());
    data.extend_from_slice(&1u16.to_le_bytes());
    data.extend_from_slice(&8000u32.to_le_bytes());
    data.extend_from_slice(&16_000u32.to_le_bytes());
    data.extend_from_slice(&2u16.to_le_bytes());
    data.extend_from_slice(&16u16.to_le_bytes());
    riff(&mut data, b"data");
    data.extend_from_slice(&u32::try_from(n * 2).unwrap().to_le_bytes());
    let mut phase = 0f64;
    for i in 0..n {
        let hz = 300.0 + 500.0 * ((i as f64 / 8000.0) * 0.2).sin().abs();
        phase += 2.0 * std::f64::consts::PI * hz / 8000.0;
        data.extend_from_slice(&((phase.sin() * 8000.0) as i16).to_le_bytes());
    }
    std::fs::write(path, data).unwrap();
}

fn sipp(target: &str, sink: u16, codec: &Codec, calls: usize, rate: usize, stats: &std::path::Path) -> Child {
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    Command::new("sipp")
        .current_dir(SCENARIOS)
        .args(["-sf", "uac_media_sink.xml", target, "-s", "700", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-key", "sink_port", &sink.to_string(), "-key", "pt", &codec.pt.to_string()])
        .args(["-key", "rtpmap", codec.rtpmap])
        .args(["-r", &rate.max(1).to_string(), "-m", &calls.to_string(), "-l", "200000", "-nostdin"])
        .args(["-trace_stat", "-fd", "1", "-stf"])
        .arg(stats)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sipp (Debian's sip-tester)")
}

/// One captured packet.
struct Packet {
    ssrc: u32,
    seq: u16,
    ts: u32,
    arrival_ns: i64,
}

struct Sink {
    socket: std::net::UdpSocket,
    port: u16,
}

impl Sink {
    fn bind() -> Self {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // A deep queue (root may exceed rmem_max) so bursts are not dropped before they are read.
        if setsockopt(&socket, sockopt::RcvBufForce, &(64 << 20)).is_err() {
            let _ = setsockopt(&socket, sockopt::RcvBuf, &(64 << 20));
        }
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true).expect("SO_TIMESTAMPNS");
        // Polled, never waited on: a reader asleep in recvmsg makes every datagram's enqueue wake
        // it, a cost loopback charges to the hub's sendto (on a real network the far end pays).
        // The kernel's timestamp is taken at enqueue either way.
        socket.set_nonblocking(true).unwrap();
        let port = socket.local_addr().unwrap().port();
        Self { socket, port }
    }

    /// Reads until `stop`, keeping what arrives while `capturing`: up to [`BATCH`] datagrams a
    /// system call (`recvmmsg`), so the receiver takes little of the CPU the hub is measured on.
    fn run(self, stop: &AtomicBool, capturing: &AtomicBool) -> Vec<Packet> {
        let mut out = Vec::with_capacity(1 << 22);
        let mut bufs = vec![[0u8; 512]; BATCH];
        let fd = self.socket.as_raw_fd();
        let mut headers =
            MultiHeaders::<SockaddrStorage>::preallocate(BATCH, Some(nix::cmsg_space!(nix::sys::time::TimeSpec)));
        let mut got: Vec<(usize, Option<i64>)> = Vec::with_capacity(BATCH);
        while !stop.load(Ordering::Acquire) {
            got.clear();
            {
                let mut iovs: Vec<[IoSliceMut; 1]> = bufs.iter_mut().map(|b| [IoSliceMut::new(&mut b[..])]).collect();
                let Ok(results) = recvmmsg(fd, &mut headers, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None) else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                for msg in results {
                    let mut arrival = None;
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                                arrival = Some(ts.tv_sec() * 1_000_000_000 + ts.tv_nsec());
                            }
                        }
                    }
                    got.push((msg.bytes, arrival));
                }
            }
            if !capturing.load(Ordering::Relaxed) {
                continue;
            }
            for (buf, &(n, arrival)) in bufs.iter().zip(&got) {
                let Some(arrival_ns) = arrival else { continue };
                if n < 12 {
                    continue;
                }
                out.push(Packet {
                    ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                    seq: u16::from_be_bytes([buf[2], buf[3]]),
                    ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                    arrival_ns,
                });
            }
        }
        out
    }
}

struct Analysis {
    frames: usize,
    streams: usize,
    late: usize,
    lost: u64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

fn analyse(packets: &[Packet], clock: u64) -> Analysis {
    let mut by_stream: HashMap<u32, Vec<&Packet>> = HashMap::new();
    for p in packets {
        by_stream.entry(p.ssrc).or_default().push(p);
    }
    let mut deviations: Vec<i64> = Vec::with_capacity(packets.len());
    let mut lost = 0u64;
    for stream in by_stream.values_mut() {
        stream.sort_by_key(|p| p.arrival_ns);
        let first = stream[0];
        let offsets: Vec<i64> = stream
            .iter()
            .map(|p| {
                let ticks = i64::from(p.ts.wrapping_sub(first.ts) as i32);
                p.arrival_ns - first.arrival_ns - ticks * 1_000_000_000 / clock as i64
            })
            .collect();
        let grid = offsets.iter().copied().min().unwrap_or(0);
        deviations.extend(offsets.iter().map(|o| o - grid));
        for w in stream.windows(2) {
            lost += u64::from(w[1].seq.wrapping_sub(w[0].seq).saturating_sub(1));
        }
    }
    let late = deviations.iter().filter(|&&d| d > 5_000_000).count();
    deviations.sort_unstable();
    let pct = |q: f64| {
        let i = ((deviations.len() as f64 * q) as usize).min(deviations.len().saturating_sub(1));
        deviations.get(i).copied().unwrap_or(0) as f64 / 1e6
    };
    Analysis {
        frames: packets.len(),
        streams: by_stream.len(),
        late,
        lost,
        p50: pct(0.5),
        p99: pct(0.99),
        p999: pct(0.999),
        max: deviations.last().copied().unwrap_or(0) as f64 / 1e6,
    }
}
