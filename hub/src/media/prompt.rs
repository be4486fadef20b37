//! Prompts: audio files decoded once, encoded once per codec and packet time, and shared by
//! every call that plays them.
//!
//! A thousand callers hearing "please hold" at once must not decode the MP3 a thousand times, nor
//! keep a thousand copies of it. [`PromptCache`] keeps two layers, both keyed by the file's
//! canonical path, size and modification time (so an edited file is read again):
//!
//! ```text
//! file ──decode+downmix+resample──▶ PCM (mono i16 at the codec's rate)  keyed (file, rate)
//!                                    │  one PCM serves PCMU and PCMA (both 8 kHz)
//!                                    └──encode──▶ EncodedPrompt           keyed (file, codec, ptime)
//! ```
//!
//! Each entry is computed by exactly one caller (single flight); concurrent callers for the same
//! key wait for it, blocking ([`PromptCache::get`]) or asynchronously ([`PromptCache::get_async`]).
//! Failures are handed to the callers waiting at that moment and are not cached, so a prompt
//! uploaded after a failed attempt plays on the next call.
//!
//! The cache is bounded by [`PromptLimits::cache_bytes`]: once the PCM and payload bytes it holds
//! go over the cap, the least recently used finished entries are dropped. Calls still playing a
//! dropped prompt keep it alive through their `Arc`; the next call decodes it again.
//!
//! Decoding uses symphonia: WAV (8/16/24/32-bit integer, float, µ-law and A-law), MP3,
//! Ogg/Vorbis and FLAC, any channel count (averaged to mono) and any sample rate (resampled with
//! rubato). A file whose header is valid but whose data is cut short (an interrupted upload)
//! plays the audio that decoded; isolated undecodable packets are skipped, and a run of them is
//! [`PromptError::Corrupt`].

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::SystemTime;

use rubato::{
    FftFixedIn, SincFixedIn, SincInterpolationParameters, SincInterpolationType, VecResampler, WindowFunction,
};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::media::codec::{CodecError, Encoder, frame_samples, pcm_rate};
use crate::sip::sdp::AudioCodec;

/// Default cache budget: enough for a few hundred short G.711 prompts, or one ten-minute prompt
/// decoded for Opus (48 kHz PCM is 5.8 MB a minute).
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Default longest prompt: ten minutes is already a long hold loop; a longer file is more likely a
/// mistake (a whole album uploaded) that would eat the cache.
pub const DEFAULT_MAX_PROMPT_SECS: u32 = 600;

/// Consecutive undecodable packets tolerated before a file is called corrupt: a scratch in an MP3
/// should not silence the prompt, a file of garbage after a valid header should fail.
const MAX_BAD_PACKETS: usize = 8;

/// Input chunk for the resampler: small enough to keep memory flat, large enough for FFT speed.
const RESAMPLE_CHUNK: usize = 1024;

/// Amplitude of generated tones, about -10 dBFS: clearly audible without clipping after G.711.
const TONE_AMPLITUDE: f32 = 0.3;

/// Fade at each end of a generated tone so it starts and stops without a click.
const TONE_FADE_MS: u32 = 5;

/// Frequency and length of the customary beep before a recording.
const BEEP_HZ: f32 = 1000.0;
/// See [`BEEP_HZ`].
const BEEP_MS: u32 = 250;

/// Why a prompt cannot be played. Every message names the file (or the generated tone), since the
/// logs are read by whoever has to fix the upload. `Clone` because one failure is handed to every
/// caller that was waiting for the same prompt.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PromptError {
    /// The file does not exist.
    #[error("{}: prompt not found", .path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but could not be read (permissions, I/O error).
    #[error("{}: cannot read prompt: {source}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error (shared: the error goes to every waiting caller).
        #[source]
        source: Arc<io::Error>,
    },
    /// Not an audio format or codec that can be decoded (or not a regular file).
    #[error("{}: unsupported audio: {reason}", .path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What was not understood.
        reason: String,
    },
    /// The format was recognised but the audio in it is damaged.
    #[error("{}: corrupt audio: {reason}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The file holds no audio at all (zero length, or zero samples).
    #[error("{}: prompt has no audio", .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Longer than [`PromptLimits::max_prompt_secs`].
    #[error("{}: prompt longer than {max_secs} s", .path.display())]
    TooLong {
        /// The file.
        path: PathBuf,
        /// The limit.
        max_secs: u32,
    },
    /// The packet time cannot be used with the codec (Opus takes 5, 10, 20, 40 or 60 ms; G.711
    /// 1 to 200 ms).
    #[error("{}: {codec} cannot be sent in {ptime_ms} ms frames", .path.display())]
    Ptime {
        /// The file.
        path: PathBuf,
        /// The codec's name.
        codec: &'static str,
        /// The packet time asked for.
        ptime_ms: u32,
    },
    /// The resampler refused the conversion (an absurd sample rate).
    #[error("{}: cannot resample: {reason}", .path.display())]
    Resample {
        /// The file.
        path: PathBuf,
        /// What rubato said.
        reason: String,
    },
    /// The encoder failed.
    #[error("{}: {source}", .path.display())]
    Codec {
        /// The file.
        path: PathBuf,
        /// The codec error (shared: the error goes to every waiting caller).
        #[source]
        source: Arc<CodecError>,
    },
}

/// A prompt ready to send: one codec payload per packet, stored back to back in one buffer so a
/// ten-minute prompt is two allocations rather than thirty thousand.
pub struct EncodedPrompt {
    /// The codec the payloads are in.
    codec: AudioCodec,
    /// Milliseconds of audio per payload.
    ptime_ms: u32,
    /// All payloads, concatenated.
    payload: Vec<u8>,
    /// End offset in `payload` of each frame; frame `i` starts where frame `i - 1` ends.
    ends: Vec<u32>,
}

impl EncodedPrompt {
    /// The codec of the payloads, so a sender can check it matches the negotiated one.
    pub fn codec(&self) -> AudioCodec {
        self.codec
    }

    /// Milliseconds per frame: the pacing interval for sending.
    pub fn ptime_ms(&self) -> u32 {
        self.ptime_ms
    }

    /// Number of frames (packets).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is no frame at all (never true for a prompt the cache returns).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The payload of frame `i`, or `None` past the end: what a sender puts in packet `i`.
    pub fn frame(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = match i.checked_sub(1) {
            Some(prev) => *self.ends.get(prev)? as usize,
            None => 0,
        };
        self.payload.get(start..end)
    }

    /// All payloads in order.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).filter_map(|i| self.frame(i))
    }

    /// Total playing time (frames × ptime): how long the caller hears it.
    pub fn duration_ms(&self) -> u64 {
        self.len() as u64 * u64::from(self.ptime_ms)
    }

    /// The RTP timestamp increment per frame (the codec's RTP clock × ptime).
    pub fn timestamp_step(&self) -> u32 {
        self.codec.clock_rate() / 1000 * self.ptime_ms
    }

    /// Heap bytes held, which is what the cache budget counts.
    pub fn heap_bytes(&self) -> usize {
        self.payload.capacity() + self.ends.capacity() * size_of::<u32>()
    }
}

impl fmt::Debug for EncodedPrompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload bytes would flood any log line.
        f.debug_struct("EncodedPrompt")
            .field("codec", &self.codec)
            .field("ptime_ms", &self.ptime_ms)
            .field("frames", &self.len())
            .field("bytes", &self.payload.len())
            .finish()
    }
}

/// Generates a sine tone, encoded for `codec` in `ptime_ms` frames: for beeps and ringback where
/// shipping a file would be silly. The tone fades in and out over 5 ms to avoid clicks; the last
/// frame is padded with silence.
pub fn tone(hz: f32, ms: u32, codec: AudioCodec, ptime_ms: u32) -> Result<EncodedPrompt, PromptError> {
    let path = tone_path(hz, ms);
    check_ptime(&path, codec, ptime_ms)?;
    let rate = pcm_rate(codec);
    if !(hz.is_finite() && hz > 0.0 && hz < rate as f32 / 2.0) {
        return Err(PromptError::Unsupported { path, reason: format!("tone frequency {hz} Hz at {rate} Hz") });
    }
    if ms == 0 {
        return Err(PromptError::Empty { path });
    }
    if ms > DEFAULT_MAX_PROMPT_SECS * 1000 {
        return Err(PromptError::TooLong { path, max_secs: DEFAULT_MAX_PROMPT_SECS });
    }
    let pcm = tone_pcm(hz, ms, rate);
    encode(&pcm, codec, ptime_ms).map_err(|source| PromptError::Codec { path, source: Arc::new(source) })
}

/// The customary 1 kHz, 250 ms beep played before recording starts.
pub fn beep(codec: AudioCodec, ptime_ms: u32) -> Result<EncodedPrompt, PromptError> {
    tone(BEEP_HZ, BEEP_MS, codec, ptime_ms)
}

/// Limits of a [`PromptCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptLimits {
    /// Bytes of PCM and payload the cache keeps before dropping least recently used entries.
    /// An entry bigger than this on its own is returned but not kept.
    pub cache_bytes: usize,
    /// Longest prompt accepted, in seconds; longer files fail with [`PromptError::TooLong`].
    pub max_prompt_secs: u32,
}

impl Default for PromptLimits {
    fn default() -> Self {
        Self { cache_bytes: DEFAULT_CACHE_BYTES, max_prompt_secs: DEFAULT_MAX_PROMPT_SECS }
    }
}

/// The shared prompt cache: a cheap `Clone` handle, one per hub, handed to everything that plays
/// audio. See the module docs for what is cached and for how long.
#[derive(Clone, Default)]
pub struct PromptCache {
    /// Shared by all clones.
    inner: Arc<Inner>,
}

impl fmt::Debug for PromptCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptCache")
            .field("limits", &self.inner.limits)
            .field("decodes", &self.decodes())
            .field("encodes", &self.encodes())
            .field("bytes", &self.cached_bytes())
            .finish()
    }
}

impl PromptCache {
    /// A cache with the given limits.
    pub fn new(limits: PromptLimits) -> Self {
        Self { inner: Arc::new(Inner { limits, ..Inner::default() }) }
    }

    /// The prompt at `path` encoded for `codec` in `ptime_ms` frames, decoding and encoding it
    /// only if no caller has already. Blocks (file I/O, decoding, and waiting for another caller
    /// doing so): from async code use [`get_async`](Self::get_async).
    pub fn get(&self, path: &Path, codec: AudioCodec, ptime_ms: u32) -> Result<Arc<EncodedPrompt>, PromptError> {
        check_ptime(path, codec, ptime_ms)?;
        let file = file_key(path)?;
        let key = EncKey { source: Source::File(file), codec: codec_id(codec), ptime_ms };
        let flight = self.inner.flight::<Arc<EncodedPrompt>>(&key);
        self.run(&key, &flight, || self.encode_source(&key.source, codec, ptime_ms))
    }

    /// [`get`](Self::get) for async callers: waits without holding a thread, and the one caller
    /// that has to decode does so on tokio's blocking pool. Must run inside a tokio runtime.
    pub async fn get_async(
        &self,
        path: &Path,
        codec: AudioCodec,
        ptime_ms: u32,
    ) -> Result<Arc<EncodedPrompt>, PromptError> {
        check_ptime(path, codec, ptime_ms)?;
        let file = file_key_async(path).await?;
        let key = EncKey { source: Source::File(file), codec: codec_id(codec), ptime_ms };
        let flight = self.inner.flight::<Arc<EncodedPrompt>>(&key);
        loop {
            if let Some(result) = flight.result.get() {
                return result.clone();
            }
            let notified = flight.notify.notified();
            tokio::pin!(notified);
            // Registered before the check below, so a result stored after it still wakes us.
            notified.as_mut().enable();
            if let Some(result) = flight.result.get() {
                return result.clone();
            }
            if !flight.started.swap(true, Ordering::AcqRel) {
                let cache = self.clone();
                let flight = Arc::clone(&flight);
                let key = key.clone();
                tokio::task::spawn_blocking(move || {
                    let _ = cache.run(&key, &flight, || cache.encode_source(&key.source, codec, ptime_ms));
                });
            }
            notified.await;
        }
    }

    /// The beep before recording ([`beep`]), generated once per codec and ptime.
    pub fn beep(&self, codec: AudioCodec, ptime_ms: u32) -> Result<Arc<EncodedPrompt>, PromptError> {
        check_ptime(&tone_path(BEEP_HZ, BEEP_MS), codec, ptime_ms)?;
        let key = EncKey {
            source: Source::Tone { hz_bits: BEEP_HZ.to_bits(), ms: BEEP_MS },
            codec: codec_id(codec),
            ptime_ms,
        };
        let flight = self.inner.flight::<Arc<EncodedPrompt>>(&key);
        self.run(&key, &flight, || self.encode_source(&key.source, codec, ptime_ms))
    }

    /// Files decoded so far (a cache hit does not count): lets tests and metrics prove sharing.
    pub fn decodes(&self) -> u64 {
        self.inner.decodes.load(Ordering::Relaxed)
    }

    /// Encodings made so far (files and tones; a cache hit does not count).
    pub fn encodes(&self) -> u64 {
        self.inner.encodes.load(Ordering::Relaxed)
    }

    /// Bytes currently held by finished entries: what the budget is measured against.
    pub fn cached_bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// Computes `flight`'s value if nobody has, stores it under `key`, and wakes async waiters.
    fn run<T: Cached>(
        &self,
        key: &T::Key,
        flight: &Arc<Flight<T>>,
        compute: impl FnOnce() -> Result<T, PromptError>,
    ) -> Result<T, PromptError> {
        flight.started.store(true, Ordering::Release);
        // Declared first so it drops last: after `settle`, and also if `compute` panics.
        let _wake = Wake(flight);
        let mut computed = false;
        let result = flight
            .result
            .get_or_init(|| {
                computed = true;
                compute()
            })
            .clone();
        if computed {
            self.inner.settle(key, flight, &result);
        }
        result
    }

    /// Encodes a file's PCM (decoding it if needed) or a tone.
    fn encode_source(
        &self,
        source: &Source,
        codec: AudioCodec,
        ptime_ms: u32,
    ) -> Result<Arc<EncodedPrompt>, PromptError> {
        let (pcm, path) = match source {
            Source::File(file) => (self.pcm(file, pcm_rate(codec))?, file.path.clone()),
            Source::Tone { hz_bits, ms } => {
                let hz = f32::from_bits(*hz_bits);
                (Arc::from(tone_pcm(hz, *ms, pcm_rate(codec))), tone_path(hz, *ms))
            }
        };
        self.inner.encodes.fetch_add(1, Ordering::Relaxed);
        let span = tracing::debug_span!("encode_prompt", path = %path.display(), codec = codec.name(), ptime_ms);
        let _enter = span.enter();
        let prompt =
            encode(&pcm, codec, ptime_ms).map_err(|source| PromptError::Codec { path, source: Arc::new(source) })?;
        tracing::info!(frames = prompt.len(), bytes = prompt.payload.len(), "prompt encoded");
        Ok(Arc::new(prompt))
    }

    /// The file's PCM at `rate`, decoding it only if no caller has already.
    fn pcm(&self, file: &FileKey, rate: u32) -> Result<Arc<[i16]>, PromptError> {
        let key = PcmKey { file: file.clone(), rate };
        let flight = self.inner.flight::<Arc<[i16]>>(&key);
        self.run(&key, &flight, || {
            self.inner.decodes.fetch_add(1, Ordering::Relaxed);
            let span = tracing::debug_span!("decode_prompt", path = %file.path.display(), rate);
            let _enter = span.enter();
            let max_secs = self.inner.limits.max_prompt_secs;
            // Demuxers and decoders fed hostile files have panicked before; a bad upload must be
            // an error for this prompt, not a crashed call task (or, async, a retry loop).
            let decoded = std::panic::catch_unwind(|| decode_file(&file.path, rate, max_secs));
            let pcm = decoded.unwrap_or_else(|_| {
                Err(PromptError::Corrupt { path: file.path.clone(), reason: "decoder panicked".into() })
            })?;
            tracing::info!(samples = pcm.len(), "prompt decoded");
            Ok(Arc::from(pcm))
        })
    }
}

/// Identity of a file's contents as far as the cache is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileKey {
    /// Canonical path, so `./a.wav` and `a.wav` share an entry.
    path: PathBuf,
    /// Size in bytes.
    len: u64,
    /// Modification time, when the filesystem has one.
    mtime: Option<SystemTime>,
}

/// What an encoded prompt was made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    /// A file.
    File(FileKey),
    /// A generated tone (frequency as bits, since `f32` is not `Hash`).
    Tone { hz_bits: u32, ms: u32 },
}

/// Key of a decoded PCM entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PcmKey {
    file: FileKey,
    rate: u32,
}

/// Key of an encoded prompt entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EncKey {
    source: Source,
    /// [`codec_id`], since `AudioCodec` is not `Hash`.
    codec: u8,
    ptime_ms: u32,
}

/// A computation that one caller performs and others wait for.
struct Flight<T> {
    /// Set once, by the caller that computed it.
    result: OnceLock<Result<T, PromptError>>,
    /// Whether some caller has taken on computing it (so async waiters do not start another).
    started: AtomicBool,
    /// Wakes async waiters once `result` is set (or the computing caller gave up).
    notify: tokio::sync::Notify,
}

impl<T> Default for Flight<T> {
    fn default() -> Self {
        Self { result: OnceLock::new(), started: AtomicBool::new(false), notify: tokio::sync::Notify::new() }
    }
}

/// Wakes a flight's async waiters when the computing caller is done, and lets another caller
/// take over if it failed to store a result (a panic).
struct Wake<'a, T>(&'a Flight<T>);

impl<T> Drop for Wake<'_, T> {
    fn drop(&mut self) {
        if self.0.result.get().is_none() {
            self.0.started.store(false, Ordering::Release);
        }
        self.0.notify.notify_waiters();
    }
}

/// A cache slot.
struct Entry<T> {
    flight: Arc<Flight<T>>,
    /// Bytes counted against the budget (0 while in flight).
    bytes: usize,
    /// Logical time of the last lookup, for LRU eviction.
    last_used: u64,
}

/// What the cache holds, under one lock (held only for map operations, never while decoding).
#[derive(Default)]
struct State {
    pcm: HashMap<PcmKey, Entry<Arc<[i16]>>>,
    encoded: HashMap<EncKey, Entry<Arc<EncodedPrompt>>>,
    /// Sum of `Entry::bytes`.
    bytes: usize,
    /// Logical clock for `last_used`.
    clock: u64,
}

/// The shared part of [`PromptCache`].
#[derive(Default)]
struct Inner {
    limits: PromptLimits,
    state: Mutex<State>,
    decodes: AtomicU64,
    encodes: AtomicU64,
}

/// A value the cache holds: PCM or an encoded prompt.
trait Cached: Clone + Send + Sync + 'static {
    /// Its key.
    type Key: Hash + Eq + Clone;
    /// The map holding values of this kind.
    fn map(state: &mut State) -> &mut HashMap<Self::Key, Entry<Self>>;
    /// Heap bytes counted against the budget.
    fn bytes(&self) -> usize;
    /// The file the key refers to, if any (to drop entries for older versions of it).
    fn file(key: &Self::Key) -> Option<&FileKey>;
}

impl Cached for Arc<[i16]> {
    type Key = PcmKey;
    fn map(state: &mut State) -> &mut HashMap<PcmKey, Entry<Self>> {
        &mut state.pcm
    }
    fn bytes(&self) -> usize {
        self.len() * size_of::<i16>()
    }
    fn file(key: &PcmKey) -> Option<&FileKey> {
        Some(&key.file)
    }
}

impl Cached for Arc<EncodedPrompt> {
    type Key = EncKey;
    fn map(state: &mut State) -> &mut HashMap<EncKey, Entry<Self>> {
        &mut state.encoded
    }
    fn bytes(&self) -> usize {
        self.heap_bytes()
    }
    fn file(key: &EncKey) -> Option<&FileKey> {
        match &key.source {
            Source::File(file) => Some(file),
            Source::Tone { .. } => None,
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement, so a panic elsewhere cannot corrupt it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The flight for `key`, created if absent; marks it used.
    fn flight<T: Cached>(&self, key: &T::Key) -> Arc<Flight<T>> {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        if let Some(entry) = T::map(&mut state).get_mut(key) {
            entry.last_used = now;
            return Arc::clone(&entry.flight);
        }
        if let Some(file) = T::file(key) {
            forget_other_versions(&mut state, file);
        }
        let flight = Arc::new(Flight::default());
        T::map(&mut state).insert(key.clone(), Entry { flight: Arc::clone(&flight), bytes: 0, last_used: now });
        flight
    }

    /// Records a finished computation: counts a success against the budget (evicting as needed),
    /// forgets a failure so the next caller tries again.
    fn settle<T: Cached>(&self, key: &T::Key, flight: &Arc<Flight<T>>, result: &Result<T, PromptError>) {
        let mut state = self.lock();
        let map = T::map(&mut state);
        let Some(entry) = map.get_mut(key).filter(|e| Arc::ptr_eq(&e.flight, flight)) else {
            return; // Already evicted or replaced.
        };
        match result {
            Ok(value) => {
                let bytes = value.bytes();
                entry.bytes = bytes;
                state.bytes += bytes;
                evict(&mut state, self.limits.cache_bytes);
            }
            Err(_) => {
                map.remove(key);
            }
        }
    }
}

/// Drops entries for other versions (size, mtime) of the same file: they can never be hit again.
fn forget_other_versions(state: &mut State, file: &FileKey) {
    let stale = |other: &FileKey| other.path == file.path && other != file;
    let mut freed = 0;
    state.pcm.retain(|k, e| {
        let keep = !stale(&k.file);
        if !keep {
            freed += e.bytes;
        }
        keep
    });
    state.encoded.retain(|k, e| {
        let keep = !matches!(&k.source, Source::File(f) if stale(f));
        if !keep {
            freed += e.bytes;
        }
        keep
    });
    state.bytes -= freed;
}

/// Drops least recently used finished entries until the cache fits in `cap` bytes.
fn evict(state: &mut State, cap: usize) {
    while state.bytes > cap {
        let oldest_pcm = oldest(&state.pcm);
        let oldest_enc = oldest(&state.encoded);
        let freed = match (oldest_pcm, oldest_enc) {
            (Some((pt, pk)), Some((et, _))) if pt <= et => state.pcm.remove(&pk).map(|e| e.bytes),
            (_, Some((_, ek))) => state.encoded.remove(&ek).map(|e| e.bytes),
            (Some((_, pk)), None) => state.pcm.remove(&pk).map(|e| e.bytes),
            (None, None) => None,
        };
        match freed {
            Some(bytes) => {
                tracing::debug!(bytes, "prompt evicted");
                state.bytes -= bytes;
            }
            None => return,
        }
    }
}

/// The least recently used finished entry of a map.
fn oldest<K: Clone, T>(map: &HashMap<K, Entry<T>>) -> Option<(u64, K)> {
    map.iter().filter(|(_, e)| e.bytes > 0).min_by_key(|(_, e)| e.last_used).map(|(k, e)| (e.last_used, k.clone()))
}

/// A stable small id for a codec (for hashing).
fn codec_id(codec: AudioCodec) -> u8 {
    match codec {
        AudioCodec::Pcmu => 0,
        AudioCodec::Pcma => 8,
        AudioCodec::Opus => 111,
    }
}

/// The name a generated tone goes by in errors and logs.
fn tone_path(hz: f32, ms: u32) -> PathBuf {
    PathBuf::from(format!("<tone {hz} Hz {ms} ms>"))
}

/// Refuses packet times the codec cannot use, before any work is done.
fn check_ptime(path: &Path, codec: AudioCodec, ptime_ms: u32) -> Result<(), PromptError> {
    let ok = match codec {
        AudioCodec::Pcmu | AudioCodec::Pcma => (1..=200).contains(&ptime_ms),
        AudioCodec::Opus => [5, 10, 20, 40, 60].contains(&ptime_ms),
    };
    if ok { Ok(()) } else { Err(PromptError::Ptime { path: path.to_owned(), codec: codec.name(), ptime_ms }) }
}

/// Maps an I/O error on `path` to [`PromptError`].
fn io_error(path: &Path, err: io::Error) -> PromptError {
    if err.kind() == io::ErrorKind::NotFound {
        PromptError::NotFound { path: path.to_owned() }
    } else {
        PromptError::Unreadable { path: path.to_owned(), source: Arc::new(err) }
    }
}

/// The cache identity of the file at `path`.
fn file_key(path: &Path) -> Result<FileKey, PromptError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| io_error(path, e))?;
    let meta = std::fs::metadata(&canonical).map_err(|e| io_error(path, e))?;
    to_file_key(path, canonical, &meta)
}

/// [`file_key`] without blocking the async runtime.
async fn file_key_async(path: &Path) -> Result<FileKey, PromptError> {
    let canonical = tokio::fs::canonicalize(path).await.map_err(|e| io_error(path, e))?;
    let meta = tokio::fs::metadata(&canonical).await.map_err(|e| io_error(path, e))?;
    to_file_key(path, canonical, &meta)
}

fn to_file_key(path: &Path, canonical: PathBuf, meta: &std::fs::Metadata) -> Result<FileKey, PromptError> {
    if !meta.is_file() {
        return Err(PromptError::Unsupported { path: path.to_owned(), reason: "not a regular file".into() });
    }
    Ok(FileKey { path: canonical, len: meta.len(), mtime: meta.modified().ok() })
}

/// Decodes a whole file to mono i16 PCM at `rate`.
fn decode_file(path: &Path, rate: u32, max_secs: u32) -> Result<Vec<i16>, PromptError> {
    let unsupported = |reason: String| PromptError::Unsupported { path: path.to_owned(), reason };
    let corrupt = |reason: String| PromptError::Corrupt { path: path.to_owned(), reason };

    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    if file.metadata().map_err(|e| io_error(path, e))?.len() == 0 {
        return Err(PromptError::Empty { path: path.to_owned() });
    }
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let format_options = FormatOptions { enable_gapless: true, ..Default::default() };
    let probed = symphonia::default::get_probe()
        .format(&Hint::new(), stream, &format_options, &MetadataOptions::default())
        .map_err(|e| match e {
            SymphoniaError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                unsupported("no known audio format".into())
            }
            SymphoniaError::IoError(e) => io_error(path, e),
            SymphoniaError::Unsupported(what) => unsupported(what.into()),
            other => corrupt(other.to_string()),
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| unsupported("no audio track".into()))?;
    let track_id = track.id;
    let source_rate = track.codec_params.sample_rate.ok_or_else(|| unsupported("no sample rate".into()))?;
    let max_frames = u64::from(max_secs) * u64::from(source_rate);
    if track.codec_params.n_frames.is_some_and(|n| n > max_frames) {
        return Err(PromptError::TooLong { path: path.to_owned(), max_secs });
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| unsupported(e.to_string()))?;
    let mut converter =
        Converter::new(source_rate, rate).map_err(|reason| PromptError::Resample { path: path.to_owned(), reason })?;

    let mut samples: Option<SampleBuffer<f32>> = None;
    let mut mono = Vec::new();
    let mut bad_run = 0;
    let mut bad_total = 0;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            // The normal end of a stream, and also a file cut short: play what was decoded.
            Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            // A chained Ogg stream: play the first one.
            Err(SymphoniaError::ResetRequired) => break,
            Err(SymphoniaError::IoError(e)) => return Err(io_error(path, e)),
            Err(other) => return Err(corrupt(other.to_string())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymphoniaError::DecodeError(what)) => {
                bad_run += 1;
                bad_total += 1;
                tracing::debug!(reason = what, "skipping undecodable packet");
                if bad_run > MAX_BAD_PACKETS {
                    return Err(corrupt(what.into()));
                }
                continue;
            }
            Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(SymphoniaError::ResetRequired) => break,
            Err(SymphoniaError::Unsupported(what)) => return Err(unsupported(what.into())),
            Err(other) => return Err(corrupt(other.to_string())),
        };
        bad_run = 0;
        let spec = *decoded.spec();
        let channels = spec.channels.count();
        if decoded.frames() == 0 || channels == 0 {
            continue;
        }
        if spec.rate != source_rate {
            return Err(corrupt(format!("sample rate changes from {source_rate} to {} Hz", spec.rate)));
        }
        let buffer = match &mut samples {
            Some(buffer) if buffer.capacity() >= decoded.capacity() * channels => buffer,
            slot => slot.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
        };
        buffer.copy_interleaved_ref(decoded);
        mono.clear();
        let scale = 1.0 / channels as f32;
        mono.extend(buffer.samples().chunks_exact(channels).map(|frame| frame.iter().sum::<f32>() * scale));
        if converter.in_frames + mono.len() as u64 > max_frames {
            return Err(PromptError::TooLong { path: path.to_owned(), max_secs });
        }
        converter.push(&mono).map_err(|e| PromptError::Resample { path: path.to_owned(), reason: e.to_string() })?;
    }
    if bad_total > 0 {
        tracing::warn!(path = %path.display(), bad_packets = bad_total, "prompt has undecodable packets");
    }
    let pcm = converter.finish().map_err(|e| PromptError::Resample { path: path.to_owned(), reason: e.to_string() })?;
    if pcm.is_empty() {
        return Err(if bad_total > 0 {
            corrupt("no packet could be decoded".into())
        } else {
            PromptError::Empty { path: path.to_owned() }
        });
    }
    Ok(pcm)
}

/// Streams mono f32 samples at one rate into i16 samples at another, keeping the duration: the
/// resampler's delay is cut from the start and its tail flushed at the end.
struct Converter {
    /// `None` when the rates match.
    resampler: Option<Box<dyn VecResampler<f32>>>,
    in_rate: u32,
    out_rate: u32,
    /// Input frames pushed so far.
    in_frames: u64,
    /// Input waiting for a full resampler chunk.
    pending: Vec<f32>,
    /// The resampler's channel buffers (one channel).
    chunk_in: Vec<Vec<f32>>,
    chunk_out: Vec<Vec<f32>>,
    /// Resampler output frames still to drop (its delay).
    skip: usize,
    out: Vec<i16>,
}

impl Converter {
    fn new(in_rate: u32, out_rate: u32) -> Result<Self, String> {
        let resampler: Option<Box<dyn VecResampler<f32>>> = if in_rate == out_rate {
            None
        } else {
            let gcd = gcd(in_rate, out_rate);
            if in_rate / gcd <= RESAMPLE_CHUNK as u32 / 2 {
                // Rational ratios with a small period (all the usual rates): exact and fast.
                Some(Box::new(
                    FftFixedIn::<f32>::new(in_rate as usize, out_rate as usize, RESAMPLE_CHUNK, 2, 1)
                        .map_err(|e| e.to_string())?,
                ))
            } else {
                // Odd rates (44101 Hz) would need a huge FFT; a windowed sinc handles any ratio.
                let sinc_len = 256;
                let window = WindowFunction::BlackmanHarris2;
                let parameters = SincInterpolationParameters {
                    sinc_len,
                    f_cutoff: rubato::calculate_cutoff(sinc_len, window),
                    oversampling_factor: 256,
                    interpolation: SincInterpolationType::Cubic,
                    window,
                };
                let ratio = f64::from(out_rate) / f64::from(in_rate);
                Some(Box::new(
                    SincFixedIn::<f32>::new(ratio, 1.0, parameters, RESAMPLE_CHUNK, 1).map_err(|e| e.to_string())?,
                ))
            }
        };
        let (chunk_out, skip) = match &resampler {
            Some(r) => (r.output_buffer_allocate(true), r.output_delay()),
            None => (Vec::new(), 0),
        };
        Ok(Self {
            resampler,
            in_rate,
            out_rate,
            in_frames: 0,
            pending: Vec::new(),
            chunk_in: vec![Vec::with_capacity(RESAMPLE_CHUNK * 2)],
            chunk_out,
            skip,
            out: Vec::new(),
        })
    }

    fn push(&mut self, samples: &[f32]) -> Result<(), rubato::ResampleError> {
        self.in_frames += samples.len() as u64;
        let Some(resampler) = &mut self.resampler else {
            self.out.extend(samples.iter().map(|&s| to_i16(s)));
            return Ok(());
        };
        self.pending.extend_from_slice(samples);
        let mut used = 0;
        loop {
            let need = resampler.input_frames_next();
            if self.pending.len() - used < need {
                break;
            }
            self.chunk_in[0].clear();
            self.chunk_in[0].extend_from_slice(&self.pending[used..used + need]);
            used += need;
            let (_, produced) = resampler.process_into_buffer(&self.chunk_in, &mut self.chunk_out, None)?;
            take_output(&self.chunk_out[0][..produced], &mut self.skip, &mut self.out);
        }
        self.pending.drain(..used);
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<i16>, rubato::ResampleError> {
        let Some(resampler) = &mut self.resampler else {
            return Ok(self.out);
        };
        let expected = usize::try_from(
            (self.in_frames * u64::from(self.out_rate) + u64::from(self.in_rate) / 2) / u64::from(self.in_rate),
        )
        .unwrap_or(usize::MAX);
        if !self.pending.is_empty() {
            self.chunk_in[0].clear();
            self.chunk_in[0].append(&mut self.pending);
            let (_, produced) =
                resampler.process_partial_into_buffer(Some(&self.chunk_in), &mut self.chunk_out, None)?;
            take_output(&self.chunk_out[0][..produced], &mut self.skip, &mut self.out);
        }
        // Flush the delay line; bounded in case a resampler ever produced nothing.
        for _ in 0..64 {
            if self.out.len() >= expected {
                break;
            }
            let (_, produced) = resampler.process_partial_into_buffer(None, &mut self.chunk_out, None)?;
            take_output(&self.chunk_out[0][..produced], &mut self.skip, &mut self.out);
        }
        self.out.resize(expected, 0);
        Ok(self.out)
    }
}

/// Appends resampler output, dropping the first `skip` frames (its delay).
fn take_output(chunk: &[f32], skip: &mut usize, out: &mut Vec<i16>) {
    let dropped = (*skip).min(chunk.len());
    *skip -= dropped;
    out.extend(chunk[dropped..].iter().map(|&s| to_i16(s)));
}

fn to_i16(sample: f32) -> i16 {
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

/// A faded sine tone at `rate`.
fn tone_pcm(hz: f32, ms: u32, rate: u32) -> Vec<i16> {
    let n = frame_samples(rate, ms);
    let fade = frame_samples(rate, TONE_FADE_MS).max(1);
    let step = std::f64::consts::TAU * f64::from(hz) / f64::from(rate);
    (0..n)
        .map(|i| {
            let edge = i.min(n - 1 - i);
            let gain = if edge < fade { edge as f32 / fade as f32 } else { 1.0 };
            to_i16(TONE_AMPLITUDE * gain * (step * i as f64).sin() as f32)
        })
        .collect()
}

/// Encodes PCM at the codec's rate into `ptime_ms` frames, padding the last with silence.
fn encode(pcm: &[i16], codec: AudioCodec, ptime_ms: u32) -> Result<EncodedPrompt, CodecError> {
    let per_frame = frame_samples(pcm_rate(codec), ptime_ms).max(1);
    let frames = pcm.len().div_ceil(per_frame);
    let mut encoder = Encoder::new(codec)?;
    let estimate = match codec {
        AudioCodec::Pcmu | AudioCodec::Pcma => pcm.len() + per_frame,
        // 32 kbit/s is 4 bytes a millisecond.
        AudioCodec::Opus => frames * ptime_ms as usize * 4,
    };
    let mut payload = Vec::with_capacity(estimate);
    let mut ends = Vec::with_capacity(frames);
    let mut last = Vec::new();
    for chunk in pcm.chunks(per_frame) {
        let frame = if chunk.len() == per_frame {
            chunk
        } else {
            last.clear();
            last.extend_from_slice(chunk);
            last.resize(per_frame, 0);
            &last
        };
        encoder.encode(frame, &mut payload)?;
        // A prompt is capped at minutes of audio, far below 4 GiB of payload.
        ends.push(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    }
    payload.shrink_to_fit();
    Ok(EncodedPrompt { codec, ptime_ms, payload, ends })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::Decoder;

    const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/media/testdata/");

    fn write_wav(path: &Path, spec: hound::WavSpec, secs: f32, hz: f32) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        let n = (spec.sample_rate as f32 * secs) as usize;
        for i in 0..n {
            let x = 0.5 * (std::f32::consts::TAU * hz * i as f32 / spec.sample_rate as f32).sin();
            for _ in 0..spec.channels {
                match (spec.sample_format, spec.bits_per_sample) {
                    (hound::SampleFormat::Float, _) => w.write_sample(x).unwrap(),
                    (_, 8) => w.write_sample((x * 127.0) as i8).unwrap(),
                    (_, 16) => w.write_sample((x * 32767.0) as i16).unwrap(),
                    (_, bits) => w.write_sample((x * ((1i64 << (bits - 1)) - 1) as f32) as i32).unwrap(),
                }
            }
        }
        w.finalize().unwrap();
    }

    fn spec(rate: u32, channels: u16, bits: u16, float: bool) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
        }
    }

    /// Decodes a prompt back to PCM at the codec's rate.
    fn play(prompt: &EncodedPrompt) -> Vec<i16> {
        let mut dec = Decoder::new(prompt.codec(), pcm_rate(prompt.codec())).unwrap();
        let mut out = Vec::new();
        for frame in prompt.frames() {
            dec.decode(frame, &mut out).unwrap();
        }
        out
    }

    use crate::media::goertzel::tone_power as goertzel;

    /// Asserts `pcm` is dominated by a tone at `hz`.
    fn assert_tone(pcm: &[i16], rate: u32, hz: f32) {
        let on = goertzel(pcm, rate, hz);
        let off = goertzel(pcm, rate, hz * 1.7);
        assert!(on > 1e5, "no energy at {hz} Hz: {on}");
        assert!(on > off * 100.0, "{hz} Hz not dominant: {on} vs {off}");
    }

    fn assert_frames(prompt: &EncodedPrompt, ms: u64) {
        let want = ms.div_ceil(u64::from(prompt.ptime_ms()));
        let got = prompt.len() as u64;
        assert!(got.abs_diff(want) <= 1, "{} frames, want {want}±1", got);
    }

    #[test]
    fn wav_44k1_stereo_plays_at_8k_with_the_tone_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        write_wav(&path, spec(44_100, 2, 16, false), 1.0, 440.0);
        let cache = PromptCache::default();
        let prompt = cache.get(&path, AudioCodec::Pcmu, 20).unwrap();
        assert_eq!(prompt.codec(), AudioCodec::Pcmu);
        assert_eq!(prompt.len(), 50, "exactly one second: the resampler delay is removed");
        assert_eq!(prompt.frame(0).map(<[u8]>::len), Some(160));
        assert_eq!(prompt.frame(50), None);
        assert_eq!(prompt.duration_ms(), 1000);
        assert_eq!(prompt.timestamp_step(), 160);
        let pcm = play(&prompt);
        assert_tone(&pcm, 8000, 440.0);
        // No delay: the tone is there from the first frame (resampler delay removed).
        assert!(goertzel(&pcm[..160], 8000, 440.0) > 1e5);
    }

    #[test]
    fn wav_8k_mono_needs_no_resampling_and_keeps_every_sample() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        write_wav(&path, spec(8000, 1, 16, false), 0.99, 1000.0);
        let cache = PromptCache::default();
        let prompt = cache.get(&path, AudioCodec::Pcma, 20).unwrap();
        assert_eq!(prompt.len(), 50, "7920 samples: 49.5 frames, the last padded");
        let pcm = play(&prompt);
        assert_eq!(pcm.len(), 8000);
        assert!(pcm[7920..].iter().all(|&s| s.abs() < 16), "padding is silence");
        assert_tone(&pcm[..7920], 8000, 1000.0);
    }

    #[test]
    fn wav_48k_float_plays_as_opus_and_g711() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        write_wav(&path, spec(48_000, 1, 32, true), 1.0, 440.0);
        let cache = PromptCache::default();
        let opus = cache.get(&path, AudioCodec::Opus, 20).unwrap();
        assert_eq!(opus.len(), 50);
        assert_eq!(opus.timestamp_step(), 960);
        assert!(opus.heap_bytes() < 50 * 200, "opus is compact: {}", opus.heap_bytes());
        assert_tone(&play(&opus)[4800..], 48_000, 440.0);
        let pcmu = cache.get(&path, AudioCodec::Pcmu, 30).unwrap();
        assert_frames(&pcmu, 1000);
        assert_tone(&play(&pcmu), 8000, 440.0);
        assert_eq!(cache.decodes(), 2, "one decode per rate");
    }

    #[test]
    fn integer_wavs_of_8_24_and_32_bits_decode() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PromptCache::default();
        for (bits, rate) in [(8, 11_025), (24, 16_000), (32, 22_050)] {
            let path = dir.path().join(format!("{bits}.wav"));
            write_wav(&path, spec(rate, 1, bits, false), 0.5, 600.0);
            let prompt = cache.get(&path, AudioCodec::Pcmu, 20).unwrap();
            assert_frames(&prompt, 500);
            assert_tone(&play(&prompt), 8000, 600.0);
        }
    }

    /// A WAV of G.711 samples (format tag 7 µ-law / 6 A-law), written by hand: hound writes PCM only.
    fn g711_wav(path: &Path, tag: u16, codec: AudioCodec, samples: &[i16]) {
        let mut data = Vec::new();
        Encoder::new(codec).unwrap().encode(samples, &mut data).unwrap();
        let mut f = Vec::new();
        f.extend_from_slice(b"RIFF");
        f.extend_from_slice(&(4 + 26 + 8 + data.len() as u32).to_le_bytes());
        f.extend_from_slice(b"WAVEfmt ");
        f.extend_from_slice(&18u32.to_le_bytes());
        f.extend_from_slice(&tag.to_le_bytes());
        f.extend_from_slice(&1u16.to_le_bytes()); // channels
        f.extend_from_slice(&8000u32.to_le_bytes());
        f.extend_from_slice(&8000u32.to_le_bytes()); // bytes/s
        f.extend_from_slice(&1u16.to_le_bytes()); // block align
        f.extend_from_slice(&8u16.to_le_bytes()); // bits
        f.extend_from_slice(&0u16.to_le_bytes()); // cbSize
        f.extend_from_slice(b"data");
        f.extend_from_slice(&(data.len() as u32).to_le_bytes());
        f.extend_from_slice(&data);
        std::fs::write(path, f).unwrap();
    }

    #[test]
    fn g711_wavs_decode() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PromptCache::default();
        let samples = tone_pcm(700.0, 1000, 8000);
        for (tag, codec) in [(7, AudioCodec::Pcmu), (6, AudioCodec::Pcma)] {
            let path = dir.path().join(format!("{tag}.wav"));
            g711_wav(&path, tag, codec, &samples);
            let prompt = cache.get(&path, AudioCodec::Pcmu, 20).unwrap();
            assert_eq!(prompt.len(), 50);
            assert_tone(&play(&prompt), 8000, 700.0);
        }
    }

    #[test]
    fn ogg_mp3_and_flac_fixtures_decode() {
        let cache = PromptCache::default();
        for (file, rate) in [("tone440_stereo_22k.ogg", 8000), ("tone440_16k.mp3", 8000), ("tone440_8k.flac", 48_000)] {
            let path = PathBuf::from(TESTDATA).join(file);
            let codec = if rate == 8000 { AudioCodec::Pcmu } else { AudioCodec::Opus };
            let prompt = cache.get(&path, codec, 20).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_frames(&prompt, 1000);
            let pcm = play(&prompt);
            assert_tone(&pcm[pcm.len() / 10..], rate, 440.0);
        }
    }

    #[test]
    fn g711_variants_share_one_decode_and_repeats_share_one_encode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        write_wav(&path, spec(16_000, 1, 16, false), 0.5, 440.0);
        let cache = PromptCache::default();
        let a = cache.get(&path, AudioCodec::Pcmu, 20).unwrap();
        let _ = cache.get(&path, AudioCodec::Pcma, 20).unwrap();
        assert_eq!((cache.decodes(), cache.encodes()), (1, 2));
        let b = cache.get(&path, AudioCodec::Pcmu, 20).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let relative = cache.clone().get(&dir.path().join(".").join("a.wav"), AudioCodec::Pcmu, 20).unwrap();
        assert!(Arc::ptr_eq(&a, &relative), "keyed by canonical path");
        let _ = cache.get(&path, AudioCodec::Pcmu, 30).unwrap();
        assert_eq!((cache.decodes(), cache.encodes()), (1, 3), "a new ptime encodes again, no new decode");
    }

    #[test]
    fn a_changed_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        write_wav(&path, spec(8000, 1, 16, false), 0.5, 440.0);
        let cache = PromptCache::default();
        assert_eq!(cache.get(&path, AudioCodec::Pcmu, 20).unwrap().len(), 25);
        write_wav(&path, spec(8000, 1, 16, false), 1.0, 440.0);
        assert_eq!(cache.get(&path, AudioCodec::Pcmu, 20).unwrap().len(), 50);
        assert_eq!(cache.decodes(), 2);
        assert_eq!(cache.cached_bytes(), 8000 * 2 + 8000 + 50 * 4, "the old version was dropped");
    }

    #[test]
    fn a_hundred_threads_share_one_decode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        write_wav(&path, spec(44_100, 2, 16, false), 1.0, 440.0);
        let cache = PromptCache::default();
        let prompts: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..100)
                .map(|i| {
                    let (cache, path) = (cache.clone(), &path);
                    let codec = if i % 2 == 0 { AudioCodec::Pcmu } else { AudioCodec::Pcma };
                    s.spawn(move || cache.get(path, codec, 20).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!((cache.decodes(), cache.encodes()), (1, 2));
        assert!(prompts.iter().step_by(2).all(|p| Arc::ptr_eq(p, &prompts[0])));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_thousand_tasks_share_one_decode() {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join("a.wav"));
        write_wav(&path, spec(22_050, 1, 16, false), 2.0, 440.0);
        let cache = PromptCache::default();
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (cache, path) = (cache.clone(), Arc::clone(&path));
                tokio::spawn(async move { cache.get_async(&path, AudioCodec::Opus, 20).await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().len(), 100);
        }
        assert_eq!((cache.decodes(), cache.encodes()), (1, 1));
    }

    #[tokio::test]
    async fn async_errors_reach_every_waiter_and_are_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("late.wav");
        std::fs::write(&path, b"not audio at all, just text").unwrap();
        let cache = PromptCache::default();
        let (a, b) =
            tokio::join!(cache.get_async(&path, AudioCodec::Pcmu, 20), cache.get_async(&path, AudioCodec::Pcmu, 20));
        assert!(matches!(a, Err(PromptError::Unsupported { .. })), "{a:?}");
        assert!(matches!(b, Err(PromptError::Unsupported { .. })), "{b:?}");
        write_wav(&path, spec(8000, 1, 16, false), 0.2, 440.0);
        assert_eq!(cache.get_async(&path, AudioCodec::Pcmu, 20).await.unwrap().len(), 10);
        assert!(matches!(
            cache.get_async(&dir.path().join("missing.wav"), AudioCodec::Pcmu, 20).await,
            Err(PromptError::NotFound { .. })
        ));
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PromptCache::default();

        let missing = dir.path().join("missing.wav");
        let err = cache.get(&missing, AudioCodec::Pcmu, 20).unwrap_err();
        assert!(matches!(err, PromptError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("missing.wav"), "{err}");

        let text = dir.path().join("text.wav");
        std::fs::write(&text, "hello, this is not a wave file\n".repeat(20)).unwrap();
        let err = cache.get(&text, AudioCodec::Pcmu, 20).unwrap_err();
        assert!(matches!(err, PromptError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("text.wav"), "{err}");

        let empty = dir.path().join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        let err = cache.get(&empty, AudioCodec::Pcmu, 20).unwrap_err();
        assert!(matches!(err, PromptError::Empty { .. }), "{err:?}");
        assert!(err.to_string().contains("empty.wav"), "{err}");

        // A valid header with no samples.
        let header_only = dir.path().join("header.wav");
        hound::WavWriter::create(&header_only, spec(8000, 1, 16, false)).unwrap().finalize().unwrap();
        let err = cache.get(&header_only, AudioCodec::Pcmu, 20).unwrap_err();
        assert!(matches!(err, PromptError::Empty { .. }), "{err:?}");

        let err = cache.get(dir.path(), AudioCodec::Pcmu, 20).unwrap_err();
        assert!(matches!(err, PromptError::Unsupported { .. }), "a directory: {err:?}");

        let err = cache.get(&missing, AudioCodec::Opus, 30).unwrap_err();
        assert!(matches!(err, PromptError::Ptime { .. }), "{err:?}");
        assert_eq!(cache.decodes(), 3, "text, zero-length and header-only were attempted; failures are not cached");
    }

    #[test]
    fn a_wav_cut_short_plays_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.wav");
        write_wav(&path, spec(8000, 1, 16, false), 2.0, 440.0);
        let bytes = std::fs::read(&path).unwrap();
        // Keep the header and one second of the two (16 000 of 32 000 data bytes).
        std::fs::write(&path, &bytes[..44 + 16_000]).unwrap();
        let prompt = PromptCache::default().get(&path, AudioCodec::Pcmu, 20).unwrap();
        assert!((40..=50).contains(&prompt.len()), "about one second: {} frames", prompt.len());
        assert_tone(&play(&prompt), 8000, 440.0);
    }

    #[test]
    fn garbage_after_a_valid_mp3_start_is_corrupt_or_short_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.mp3");
        let mut bytes = std::fs::read(PathBuf::from(TESTDATA).join("tone440_16k.mp3")).unwrap();
        let half = bytes.len() / 2;
        for (i, b) in bytes[half..].iter_mut().enumerate() {
            *b = (i * 131 % 251) as u8;
        }
        match PromptCache::default().get(&path_with(&path, &bytes), AudioCodec::Pcmu, 20) {
            Ok(prompt) => assert!(prompt.duration_ms() <= 1100),
            Err(e) => assert!(matches!(e, PromptError::Corrupt { .. }), "{e:?}"),
        }
    }

    fn path_with(path: &Path, bytes: &[u8]) -> PathBuf {
        std::fs::write(path, bytes).unwrap();
        path.to_owned()
    }

    #[test]
    fn long_prompts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.wav");
        write_wav(&path, spec(8000, 1, 16, false), 2.5, 440.0);
        let cache = PromptCache::new(PromptLimits { max_prompt_secs: 2, ..PromptLimits::default() });
        let err = cache.get(&path, AudioCodec::Pcmu, 20).unwrap_err();
        assert!(matches!(err, PromptError::TooLong { max_secs: 2, .. }), "{err:?}");
        // MP3 does not declare its length up front: caught while decoding.
        let cache = PromptCache::new(PromptLimits { max_prompt_secs: 0, ..PromptLimits::default() });
        let err = cache.get(&PathBuf::from(TESTDATA).join("tone440_16k.mp3"), AudioCodec::Pcmu, 20).unwrap_err();
        assert!(matches!(err, PromptError::TooLong { .. }), "{err:?}");
    }

    #[test]
    fn the_cache_stays_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        // Each prompt: about 8000 bytes of PCM + 4000 of payload + 200 of offsets; two fit.
        let cache = PromptCache::new(PromptLimits { cache_bytes: 30_000, ..PromptLimits::default() });
        let paths: Vec<_> = (0..3)
            .map(|i| {
                let path = dir.path().join(format!("{i}.wav"));
                write_wav(&path, spec(8000, 1, 16, false), 0.5 + i as f32 * 0.01, 440.0);
                path
            })
            .collect();
        for path in &paths {
            cache.get(path, AudioCodec::Pcmu, 10).unwrap();
            assert!(cache.cached_bytes() <= 30_000, "{}", cache.cached_bytes());
        }
        assert_eq!(cache.decodes(), 3);
        // The most recent is still cached; the first was evicted and decodes again.
        cache.get(&paths[2], AudioCodec::Pcmu, 10).unwrap();
        assert_eq!(cache.decodes(), 3);
        cache.get(&paths[0], AudioCodec::Pcmu, 10).unwrap();
        assert_eq!(cache.decodes(), 4);
    }

    #[test]
    fn the_beep_is_a_quarter_second_of_1khz_cached_per_codec() {
        let beep = beep(AudioCodec::Pcmu, 20).unwrap();
        assert_eq!(beep.len(), 13, "250 ms in 20 ms frames, last padded");
        let pcm = play(&beep);
        assert_tone(&pcm[..2000], 8000, 1000.0);
        assert!(pcm[..4].iter().all(|&s| s.abs() < 700), "fades in: {:?}", &pcm[..8]);
        let opus = tone(425.0, 1000, AudioCodec::Opus, 20).unwrap();
        assert_eq!(opus.len(), 50);
        assert_tone(&play(&opus)[4800..], 48_000, 425.0);

        let cache = PromptCache::default();
        let a = cache.beep(AudioCodec::Pcma, 20).unwrap();
        let b = cache.beep(AudioCodec::Pcma, 20).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!((cache.decodes(), cache.encodes()), (0, 1));

        assert!(matches!(tone(5000.0, 100, AudioCodec::Pcmu, 20), Err(PromptError::Unsupported { .. })));
        assert!(matches!(tone(1000.0, 0, AudioCodec::Pcmu, 20), Err(PromptError::Empty { .. })));
        assert!(matches!(tone(1000.0, 100, AudioCodec::Pcmu, 0), Err(PromptError::Ptime { .. })));
    }

    #[test]
    fn the_cache_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<PromptCache>();
        assert_send_sync::<PromptError>();
        assert_send_sync::<Arc<EncodedPrompt>>();
    }
}
