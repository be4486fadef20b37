//! In-band DTMF detection: digits sent as audio tones, as old POTS gateways do.
//!
//! Sans-IO and allocation-free on the hot path: the caller pushes 8 kHz linear samples (the hub
//! decodes G.711/Opus to 8 kHz first) in chunks of any length and gets each digit once, when its
//! tone ends.
//!
//! # How
//!
//! The audio is cut into blocks of [`BLOCK`] = 102 samples (12.75 ms, as spandsp and Asterisk
//! do). Over each block one Goertzel filter per DTMF frequency measures that frequency's power:
//! 102 samples is short enough for two blocks to fit in a 40 ms tone (the shortest ITU-T Q.24
//! asks receivers to accept) and long enough to tell the nearest frequencies (697/770 Hz) apart
//! by more than 20 dB. A block is a *hit* for a digit when, in the spirit of Q.24 and spandsp:
//!
//! - its row and column tones are each above a minimum level (about -30 dBm0);
//! - the row tone is at most 8 dB stronger than the column tone ("normal twist", what line loss
//!   at high frequencies causes) and the column tone at most 4 dB stronger ("reverse twist");
//! - the strongest row beats every other row, and the strongest column every other column, by
//!   8 dB;
//! - the two tones carry at least 82% of the block's energy, which rejects speech and noise
//!   (their energy is spread over many frequencies; a synthetic voice peaks below 50%).
//!
//! ```text
//!            start: 2 hits in a row          end: 2 misses in a row
//! idle ──────────────────────────▶ active ──────────────────────────▶ report, idle
//!                                  │    ▲
//!                                  └────┘ a block where the digit is still the strongest
//!                                         and holds ≥ 40% of the energy is not a miss
//! ```
//!
//! Two hits to start rejects tones of 20 ms or less (Q.24's "must not operate"): such a tone
//! fills at most one block, or two blocks to at most 78% each, below the 82% energy share, while
//! a 40 ms tone always fills two blocks. The relaxed test while active bridges the partial
//! blocks of a 10 ms dropout, so one key press is one digit; two misses (25.5 ms) to end makes
//! two presses of the same key separated by 30 ms or more two digits. No second-harmonic check:
//! the energy test already rejects voices, whose harmonics spread the energy. The share also
//! sets the noise limit: detection is reliable down to about 10 dB SNR.
//!
//! The duration comes from the tone's strength in every block it touches, not from block
//! counts: a block half-filled by the tone has half the full Goertzel magnitude, so the edges
//! are measured to a few milliseconds.

use std::f64::consts::TAU;

/// The only sample rate the detector runs at: the hub decodes every call's audio to 8 kHz.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples per Goertzel block (12.75 ms at 8 kHz); see the module docs for why.
pub const BLOCK: usize = 102;

/// The low ("row") group of DTMF frequencies, in Hz.
const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// The high ("column") group of DTMF frequencies, in Hz.
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad: `KEYS[row][col]`.
const KEYS: [[char; 4]; 4] = [['1', '2', '3', 'A'], ['4', '5', '6', 'B'], ['7', '8', '9', 'C'], ['*', '0', '#', 'D']];

/// Half the block length: a full-block sine of amplitude `a` has Goertzel power `(a·N/2)²`.
const HALF_BLOCK: f32 = BLOCK as f32 / 2.0;
/// The weakest tone accepted, as a peak amplitude (about -30 dBm0 with G.711 full scale at
/// 32124), turned into Goertzel power.
const MIN_POWER: f32 = (700.0 * HALF_BLOCK) * (700.0 * HALF_BLOCK);
/// The row tone may be this much stronger than the column tone (8 dB).
const NORMAL_TWIST: f32 = 6.31;
/// The column tone may be this much stronger than the row tone (4 dB).
const REVERSE_TWIST: f32 = 2.51;
/// How much the strongest row (column) must beat the other rows (columns): 8 dB.
const RELATIVE_PEAK: f32 = 6.31;
/// The share of the block's energy the two tones must carry for a hit: above the 78% of a
/// 20 ms tone split over two blocks, below the ~91% of a full block at 10 dB SNR.
const HIT_SHARE: f32 = 0.82;
/// The share that keeps an active digit going (a block partly in a dropout or at the edge).
const HOLD_SHARE: f32 = 0.4;
/// The weakest level that keeps an active digit going, as a fraction of [`MIN_POWER`].
const HOLD_POWER: f32 = MIN_POWER / 10.0;
/// Consecutive hits that start a digit.
const START_BLOCKS: u8 = 2;
/// Consecutive misses that end a digit.
const END_BLOCKS: u8 = 2;
/// Blocks whose magnitude is below this fraction of the tone's peak count as no tone (noise)
/// in the duration.
const EDGE_FLOOR: f32 = 0.2;

/// Why a detector cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InbandError {
    /// Only 8 kHz is supported; callers decode or resample to it first.
    #[error("in-band DTMF detection runs at {SAMPLE_RATE} Hz, not {0} Hz: decode to 8 kHz first")]
    SampleRate(u32),
}

/// A digit heard in the audio, reported once when its tone ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectedDigit {
    /// `0`–`9`, `*`, `#` or `A`–`D`.
    pub digit: char,
    /// How long the tone lasted, to a few milliseconds.
    pub duration_ms: u32,
}

/// A row and column: one key of the keypad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    row: usize,
    col: usize,
}

impl Key {
    fn digit(self) -> char {
        KEYS[self.row][self.col]
    }
}

/// Measures a tone's length from its Goertzel magnitudes, row and column apart.
///
/// A block the tone fills has the tone's full magnitude, one it fills partly a proportional
/// share, so the tone's length in blocks is the sum of magnitudes over the full-block magnitude.
/// That reference is the mean of the blocks between the first and the last (the edges are the
/// partial ones), which also averages out the noise.
#[derive(Debug, Clone, Copy, Default)]
struct Length {
    sum: [f32; 2],
    blocks: [u16; 2],
    first: [f32; 2],
    last: [f32; 2],
    peak: [f32; 2],
}

impl Length {
    /// The length of a tone first hit in the block of `powers`, counting the block before it
    /// (`previous`) if the tone had already begun there.
    fn start(key: Key, previous: &[f32; 8], powers: &[f32; 8]) -> Self {
        let mut length = Self { peak: magnitudes(key, powers), ..Self::default() };
        length.add(key, previous);
        length.add(key, powers);
        length
    }

    fn add(&mut self, key: Key, powers: &[f32; 8]) {
        for (i, magnitude) in magnitudes(key, powers).into_iter().enumerate() {
            if magnitude < EDGE_FLOOR * self.peak[i] {
                continue;
            }
            if self.blocks[i] == 0 {
                self.first[i] = magnitude;
            }
            self.blocks[i] = self.blocks[i].saturating_add(1);
            self.sum[i] += magnitude;
            self.last[i] = magnitude;
            self.peak[i] = self.peak[i].max(magnitude);
        }
    }

    fn ms(&self) -> u32 {
        let blocks: f32 = (0..2)
            .map(|i| {
                let n = f32::from(self.blocks[i]);
                let interior = (self.sum[i] - self.first[i] - self.last[i]) / (n - 2.0);
                let full = if n >= 3.0 && interior > 0.0 { interior } else { self.peak[i] };
                if full > 0.0 { (self.sum[i] / full).min(n) } else { 0.0 }
            })
            .sum();
        let ms = blocks / 2.0 * BLOCK as f32 * 1000.0 / SAMPLE_RATE as f32;
        ms.round() as u32
    }
}

/// The row and column magnitudes of `key` in a block.
fn magnitudes(key: Key, powers: &[f32; 8]) -> [f32; 2] {
    [powers[key.row].sqrt(), powers[4 + key.col].sqrt()]
}

/// A key seen in consecutive blocks: hits while a candidate, misses while active.
#[derive(Debug, Clone, Copy)]
struct Run {
    key: Key,
    count: u8,
    length: Length,
}

impl Run {
    fn detected(&self) -> DetectedDigit {
        DetectedDigit { digit: self.key.digit(), duration_ms: self.length.ms() }
    }
}

/// Detects DTMF tones in one stream of 8 kHz audio.
#[derive(Debug, Clone)]
pub struct InbandDetector {
    /// `2·cos(2πf/fs)` per frequency, rows then columns.
    coeffs: [f32; 8],
    /// Goertzel state of the block being filled.
    s1: [f32; 8],
    s2: [f32; 8],
    /// Sum of squared samples of the block being filled.
    energy: f32,
    /// Samples in the block being filled.
    filled: usize,
    /// The previous block's powers, so a starting tone's leading edge counts in its duration.
    previous: [f32; 8],
    /// A key hit in the latest blocks but not yet long enough to be a digit.
    candidate: Option<Run>,
    /// The digit being pressed.
    active: Option<Run>,
}

impl InbandDetector {
    /// A detector for audio at `sample_rate`, which must be [`SAMPLE_RATE`] (8 kHz).
    pub fn new(sample_rate: u32) -> Result<Self, InbandError> {
        if sample_rate != SAMPLE_RATE {
            return Err(InbandError::SampleRate(sample_rate));
        }
        let coeff = |f: f64| (2.0 * (TAU * f / f64::from(SAMPLE_RATE)).cos()) as f32;
        let mut coeffs = [0.0; 8];
        for (c, f) in coeffs.iter_mut().zip(ROWS.iter().chain(&COLS)) {
            *c = coeff(*f);
        }
        Ok(Self::idle(coeffs))
    }

    /// A detector with no audio seen yet.
    fn idle(coeffs: [f32; 8]) -> Self {
        Self {
            coeffs,
            s1: [0.0; 8],
            s2: [0.0; 8],
            energy: 0.0,
            filled: 0,
            previous: [0.0; 8],
            candidate: None,
            active: None,
        }
    }

    /// Feeds `samples` (any number) and appends to `digits` each digit whose tone ended in them.
    ///
    /// `digits` is the caller's buffer so the hot path never allocates; most calls append
    /// nothing.
    pub fn push(&mut self, samples: &[i16], digits: &mut Vec<DetectedDigit>) {
        let mut rest = samples;
        while !rest.is_empty() {
            let (now, later) = rest.split_at((BLOCK - self.filled).min(rest.len()));
            self.feed(now);
            rest = later;
            if self.filled == BLOCK {
                digits.extend(self.finish_block());
            }
        }
    }

    /// The digit whose tone is sounding now, if any: lets an IVR stop a prompt at the key press
    /// rather than at its release.
    pub fn active(&self) -> Option<char> {
        self.active.map(|run| run.key.digit())
    }

    /// Reports the digit still sounding when the audio stops (end of a recording, hangup) and
    /// starts over; the partial block is dropped.
    pub fn flush(&mut self) -> Option<DetectedDigit> {
        let digit = self.active.map(|run| run.detected());
        *self = Self::idle(self.coeffs);
        digit
    }

    /// Runs the Goertzel filters over samples that fit in the current block.
    fn feed(&mut self, samples: &[i16]) {
        let (mut s1, mut s2, mut energy) = (self.s1, self.s2, self.energy);
        for &x in samples {
            let x = f32::from(x);
            energy += x * x;
            for i in 0..8 {
                // `x - s2` does not wait for the latest `s1`: the dependency chain per sample is
                // one multiply and one add.
                let s0 = self.coeffs[i] * s1[i] + (x - s2[i]);
                s2[i] = s1[i];
                s1[i] = s0;
            }
        }
        (self.s1, self.s2, self.energy) = (s1, s2, energy);
        self.filled += samples.len();
    }

    /// Classifies the full block, advances the state machine, and returns an ended digit.
    fn finish_block(&mut self) -> Option<DetectedDigit> {
        let mut powers = [0.0; 8];
        for (i, p) in powers.iter_mut().enumerate() {
            let (s1, s2) = (self.s1[i], self.s2[i]);
            *p = s1 * s1 + s2 * s2 - self.coeffs[i] * s1 * s2;
        }
        let energy = self.energy;
        (self.s1, self.s2, self.energy, self.filled) = ([0.0; 8], [0.0; 8], 0.0, 0);

        let mut ended = None;
        if let Some(run) = &mut self.active {
            run.count = if holds(run.key, &powers, energy) { 0 } else { run.count + 1 };
            run.length.add(run.key, &powers);
            if run.count >= END_BLOCKS {
                ended = Some(run.detected());
                self.active = None;
            }
        }
        match hit(&powers, energy) {
            Some(key) if self.active.map(|run| run.key) != Some(key) => {
                let candidate = match &mut self.candidate {
                    Some(run) if run.key == key => {
                        run.count = run.count.saturating_add(1);
                        run.length.add(key, &powers);
                        run
                    }
                    other => other.insert(Run { key, count: 1, length: Length::start(key, &self.previous, &powers) }),
                };
                if self.active.is_none() && candidate.count >= START_BLOCKS {
                    self.active = Some(Run { count: 0, ..*candidate });
                    self.candidate = None;
                }
            }
            _ => self.candidate = None,
        }
        self.previous = powers;
        ended
    }
}

/// The strongest of `powers` and its index.
fn strongest(powers: &[f32]) -> (usize, f32) {
    powers.iter().copied().enumerate().fold((0, f32::MIN), |best, (i, p)| if p > best.1 { (i, p) } else { best })
}

/// Whether the row and column levels are within the twist limits.
fn twist_ok(row: f32, col: f32) -> bool {
    col <= row * REVERSE_TWIST && row <= col * NORMAL_TWIST
}

/// The key a block is a hit for, with every check of the module docs.
fn hit(powers: &[f32; 8], energy: f32) -> Option<Key> {
    let (rows, cols) = powers.split_at(4);
    let (row, pr) = strongest(rows);
    let (col, pc) = strongest(cols);
    let dominates = |group: &[f32], best: usize, peak: f32| {
        group.iter().enumerate().all(|(i, &p)| i == best || p * RELATIVE_PEAK <= peak)
    };
    let ok = pr >= MIN_POWER
        && pc >= MIN_POWER
        && twist_ok(pr, pc)
        && dominates(rows, row, pr)
        && dominates(cols, col, pc)
        && pr + pc >= HIT_SHARE * HALF_BLOCK * energy;
    ok.then_some(Key { row, col })
}

/// Whether a block keeps `key` active: still the strongest row and column, within the twist
/// limits, and with a relaxed level and energy share (edges and dropouts fill blocks partly).
fn holds(key: Key, powers: &[f32; 8], energy: f32) -> bool {
    let (rows, cols) = powers.split_at(4);
    let (pr, pc) = (rows[key.row], cols[key.col]);
    strongest(rows).0 == key.row
        && strongest(cols).0 == key.col
        && pr >= HOLD_POWER
        && pc >= HOLD_POWER
        && twist_ok(pr, pc)
        && pr + pc >= HOLD_SHARE * HALF_BLOCK * energy
}

/// The row and column frequencies of a digit (`a`–`d` are taken as `A`–`D`).
fn frequencies(digit: char) -> Option<(f64, f64)> {
    let digit = digit.to_ascii_uppercase();
    KEYS.iter().enumerate().find_map(|(r, keys)| {
        let c = keys.iter().position(|&k| k == digit)?;
        Some((ROWS[r], COLS[c]))
    })
}

/// A DTMF tone for tests and fixtures: `ms` milliseconds of `digit` at `sample_rate`, each of
/// its two sines with peak `amplitude` (about 7000 is -10 dBm0 per tone in G.711 scale).
///
/// A character that is not a DTMF digit gives silence of the same length, so a sequence built
/// from it keeps its timing.
pub fn dtmf_tone(digit: char, ms: u32, sample_rate: u32, amplitude: f32) -> Vec<i16> {
    two_tones(digit, ms, sample_rate, amplitude, amplitude)
}

/// [`dtmf_tone`] with separate row and column amplitudes (twist).
fn two_tones(digit: char, ms: u32, sample_rate: u32, row_amplitude: f32, col_amplitude: f32) -> Vec<i16> {
    let n = usize::try_from(u64::from(ms) * u64::from(sample_rate) / 1000).unwrap_or(0);
    let Some((row, col)) = frequencies(digit) else { return vec![0; n] };
    let rate = f64::from(sample_rate);
    (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            let v = f64::from(row_amplitude) * (TAU * row * t).sin() + f64::from(col_amplitude) * (TAU * col * t).sin();
            v.round() as i16
        })
        .collect()
}

/// Power at `hz` of a whole buffer (one Goertzel filter), normalised per sample: for tests
/// that check a tone is present in decoded or recorded audio.
#[cfg(test)]
pub(crate) fn tone_power(pcm: &[i16], rate: u32, hz: f32) -> f64 {
    let coeff = 2.0 * (std::f64::consts::TAU * f64::from(hz) / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in pcm {
        let s = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (pcm.len() as f64).powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &str = "123A456B789C*0#D";

    /// A deterministic xorshift PRNG with Gaussian samples (Box–Muller).
    struct Rng(u64);

    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn gaussian(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (TAU * v).cos()
        }
    }

    fn add_noise(samples: &mut [i16], sigma: f64, rng: &mut Rng) {
        for s in samples {
            *s = (f64::from(*s) + sigma * rng.gaussian()).round().clamp(-32768.0, 32767.0) as i16;
        }
    }

    fn silence(ms: u32) -> Vec<i16> {
        vec![0; (ms * 8) as usize]
    }

    /// Runs `samples` through a new detector in chunks of `chunk`, flushing at the end.
    fn detect(samples: &[i16], chunk: usize) -> Vec<DetectedDigit> {
        let mut det = InbandDetector::new(8000).unwrap();
        let mut digits = Vec::new();
        for c in samples.chunks(chunk) {
            det.push(c, &mut digits);
        }
        digits.extend(det.flush());
        digits
    }

    fn digits(found: &[DetectedDigit]) -> String {
        found.iter().map(|d| d.digit).collect()
    }

    /// All digits, 80 ms tones with 60 ms gaps, with twist (dB, row over column) and 15 dB SNR.
    fn all_digits(twist_db: f64, lead_samples: usize, rng: &mut Rng) -> Vec<i16> {
        let amplitude = 6000.0;
        let (row, col) = if twist_db >= 0.0 {
            (amplitude, amplitude / 10f64.powf(twist_db / 20.0))
        } else {
            (amplitude / 10f64.powf(-twist_db / 20.0), amplitude)
        };
        let mut signal = vec![0; lead_samples];
        for d in ALL.chars() {
            signal.extend(two_tones(d, 80, 8000, row as f32, col as f32));
            signal.extend(silence(60));
        }
        let tone_power = (row * row + col * col) / 2.0;
        let sigma = (tone_power / 10f64.powf(1.5)).sqrt();
        add_noise(&mut signal, sigma, rng);
        signal
    }

    #[test]
    fn rejects_other_sample_rates() {
        assert_eq!(InbandDetector::new(16000).unwrap_err(), InbandError::SampleRate(16000));
        assert!(InbandDetector::new(8000).is_ok());
    }

    #[test]
    fn all_digits_in_noise_with_twist() {
        let mut rng = Rng(0x5EED_1234_ABCD_0001);
        for (twist, lead, chunk) in [(0.0, 0, 160), (3.0, 37, 160), (-3.0, 71, 1), (3.0, 101, 37), (0.0, 50, 1 << 20)] {
            let signal = all_digits(twist, lead, &mut rng);
            let found = detect(&signal, chunk);
            assert_eq!(digits(&found), ALL, "twist {twist} lead {lead} chunk {chunk}: {found:?}");
            for d in &found {
                assert!(d.duration_ms.abs_diff(80) <= 20, "twist {twist} lead {lead}: {d:?}");
            }
        }
    }

    #[test]
    fn durations_are_close() {
        for (ms, lead) in [(40, 0), (40, 51), (100, 13), (250, 90), (1000, 7)] {
            let mut signal = vec![0; lead];
            signal.extend(dtmf_tone('5', ms, 8000, 6000.0));
            signal.extend(silence(100));
            let found = detect(&signal, 160);
            assert_eq!(digits(&found), "5", "{ms} ms lead {lead}");
            assert!(found[0].duration_ms.abs_diff(ms) <= 5, "{ms} ms lead {lead}: {found:?}");
        }
    }

    #[test]
    fn noise_alone_is_no_digit() {
        let mut rng = Rng(42);
        for sigma in [300.0, 1000.0, 3000.0, 9000.0] {
            let mut noise = silence(10_000);
            add_noise(&mut noise, sigma, &mut rng);
            assert_eq!(detect(&noise, 160), [], "sigma {sigma}");
        }
    }

    /// Ten seconds of a synthetic voice: harmonics of a 120–220 Hz pitch with vibrato, shaped by
    /// moving formants and a syllable-rate envelope, plus a little noise.
    fn speech_like(seconds: u32, seed: u64) -> Vec<i16> {
        let mut rng = Rng(seed);
        let rate = 8000.0;
        let mut phases = [0.0f64; 32];
        let mut out = Vec::new();
        for i in 0..seconds * 8000 {
            let t = f64::from(i) / rate;
            let f0 = 170.0 + 45.0 * (TAU * 0.37 * t).sin() + 6.0 * (TAU * 5.5 * t).sin();
            let formants = [
                (550.0 + 250.0 * (TAU * 0.9 * t).sin(), 1.0),
                (1500.0 + 600.0 * (TAU * 0.53 * t + 1.0).sin(), 0.6),
                (2600.0 + 200.0 * (TAU * 0.31 * t).sin(), 0.3),
            ];
            let envelope = 0.5 * (1.0 + (TAU * 4.0 * t).sin()).powi(2) / 2.0 + 0.05;
            let mut v = 0.0;
            for (k, phase) in phases.iter_mut().enumerate() {
                let f = f0 * (k + 1) as f64;
                *phase = (*phase + TAU * f / rate) % TAU;
                if f > 3600.0 {
                    continue;
                }
                let gain: f64 = formants.iter().map(|&(fc, g)| g * (-((f - fc) / 130.0).powi(2) / 2.0).exp()).sum();
                v += (gain + 0.03) * phase.sin();
            }
            out.push((9000.0 * envelope * v + 200.0 * rng.gaussian()).clamp(-32768.0, 32767.0) as i16);
        }
        out
    }

    #[test]
    fn speech_is_no_digit() {
        for seed in [1, 2] {
            let speech = speech_like(10, seed);
            let peak = speech.iter().map(|s| s.unsigned_abs()).max().unwrap();
            assert!(peak > 10_000, "the voice is loud enough to matter: {peak}");
            assert_eq!(detect(&speech, 160), []);
        }
    }

    #[test]
    fn twenty_ms_tone_is_no_digit() {
        for digit in ALL.chars() {
            for lead in 0..BLOCK {
                let mut signal = vec![0; lead];
                signal.extend(dtmf_tone(digit, 20, 8000, 6000.0));
                signal.extend(silence(100));
                assert_eq!(detect(&signal, 160), [], "{digit} lead {lead}");
            }
        }
    }

    #[test]
    fn forty_ms_tone_is_a_digit() {
        for digit in ALL.chars() {
            for lead in (0..BLOCK).step_by(3) {
                let mut signal = vec![0; lead];
                signal.extend(dtmf_tone(digit, 40, 8000, 6000.0));
                signal.extend(silence(100));
                assert_eq!(digits(&detect(&signal, 160)), digit.to_string(), "lead {lead}");
            }
        }
    }

    #[test]
    fn quiet_tone_is_no_digit() {
        let mut signal = dtmf_tone('1', 200, 8000, 300.0);
        signal.extend(silence(100));
        assert_eq!(detect(&signal, 160), []);
    }

    #[test]
    fn ten_ms_dropout_is_one_digit() {
        let mut rng = Rng(7);
        for offset in (0..BLOCK).step_by(5) {
            let mut signal = dtmf_tone('0', 300, 8000, 6000.0);
            let start = 1200 + offset;
            signal[start..start + 80].fill(0);
            signal.extend(silence(100));
            add_noise(&mut signal, 600.0, &mut rng);
            let found = detect(&signal, 160);
            assert_eq!(digits(&found), "0", "offset {offset}: {found:?}");
            assert!(found[0].duration_ms.abs_diff(290) <= 20, "offset {offset}: {found:?}");
        }
    }

    #[test]
    fn same_digit_after_a_gap_is_two_digits() {
        let mut rng = Rng(9);
        for (gap, lead) in [(50, 0), (50, 40), (40, 77), (45, 11)] {
            let mut signal = vec![0; lead];
            signal.extend(dtmf_tone('7', 100, 8000, 6000.0));
            signal.extend(silence(gap));
            signal.extend(dtmf_tone('7', 100, 8000, 6000.0));
            signal.extend(silence(100));
            add_noise(&mut signal, 600.0, &mut rng);
            assert_eq!(digits(&detect(&signal, 160)), "77", "gap {gap} lead {lead}");
        }
    }

    #[test]
    fn back_to_back_digits_without_gap() {
        let mut signal = dtmf_tone('1', 100, 8000, 6000.0);
        signal.extend(dtmf_tone('9', 100, 8000, 6000.0));
        signal.extend(silence(100));
        assert_eq!(digits(&detect(&signal, 160)), "19");
    }

    #[test]
    fn active_and_flush_report_a_sounding_tone() {
        let mut det = InbandDetector::new(8000).unwrap();
        let mut found = Vec::new();
        det.push(&dtmf_tone('C', 200, 8000, 6000.0), &mut found);
        assert_eq!((found.len(), det.active()), (0, Some('C')));
        let d = det.flush().unwrap();
        assert_eq!(d.digit, 'C');
        assert!(d.duration_ms.abs_diff(200) <= 15, "{d:?}");
        assert_eq!((det.active(), det.flush()), (None, None));
    }

    #[test]
    fn tone_helper() {
        let tone = dtmf_tone('d', 100, 8000, 6000.0);
        assert_eq!(tone.len(), 800);
        assert!(tone.iter().all(|s| s.unsigned_abs() <= 12_000));
        assert_eq!(dtmf_tone('x', 20, 48000, 6000.0), vec![0; 960]);
        assert_eq!(frequencies('*'), Some((941.0, 1209.0)));
    }
}
