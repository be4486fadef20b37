//! Cost of in-band DTMF detection per call: 60 s of noisy audio with digits, pushed in 20 ms
//! frames as the RTP task would, timed with `std::time::Instant`.

use std::hint::black_box;
use std::time::Instant;

use hub::media::goertzel::{InbandDetector, dtmf_tone};

const FRAME: usize = 160;

/// 60 s of noise (xorshift, uniform ±1500) with a digit every 500 ms.
fn audio() -> Vec<i16> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 3001) as i16 - 1500
    };
    let mut samples = Vec::with_capacity(60 * 8000);
    let mut digits = "0123456789*#ABCD".chars().cycle();
    while samples.len() < 60 * 8000 {
        let digit = digits.next().unwrap_or('5');
        samples.extend(dtmf_tone(digit, 100, 8000, 6000.0));
        samples.extend(std::iter::repeat_n(0i16, 3200));
    }
    samples.truncate(60 * 8000);
    for s in &mut samples {
        *s = s.saturating_add(noise());
    }
    samples
}

fn main() {
    let samples = audio();
    let frames = samples.len() / FRAME;
    let mut digits = Vec::with_capacity(256);
    let mut run = || {
        let Ok(mut detector) = InbandDetector::new(8000) else { return 0 };
        digits.clear();
        for frame in samples.chunks_exact(FRAME) {
            detector.push(black_box(frame), &mut digits);
        }
        digits.extend(detector.flush());
        digits.len()
    };
    let found = run();
    let iterations = 50;
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(run());
    }
    let elapsed = start.elapsed();
    let ns_per_frame = elapsed.as_nanos() as f64 / (iterations * frames) as f64;
    let cpu_per_call = ns_per_frame / 20_000_000.0;
    println!("digits found per 60 s run: {found} (expected 120)");
    println!("{iterations} x {frames} frames of 20 ms in {elapsed:?}");
    println!("ns per 20 ms frame: {ns_per_frame:.0}");
    println!("CPU per call: {:.5}% of one core", cpu_per_call * 100.0);
    println!("calls per core: {:.0}", 1.0 / cpu_per_call);
}
