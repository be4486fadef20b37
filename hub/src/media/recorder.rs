//! Recording a caller to a file, for voicemail and call recording: a WAV file (16-bit mono PCM)
//! or, with [`RecordFormat::Opus`], an Ogg Opus file (RFC 7845) about a tenth of the size.
//!
//! The file is written under a hidden temporary name (`.{name}.wav.partial`, `.{name}.opus.partial`)
//! and renamed to `{name}.wav` (`{name}.opus`) only once its header (last page) is final and its
//! data is on disk, so anything that lists the directory (the web UI, the voicemail index) never
//! sees a half-written recording.
//!
//! A recording ends for one of the [`StopReason`]s. The recorder itself stops on the maximum
//! length and on silence; the caller stops it on hang-up or a key press by calling
//! [`Recorder::finish`]. If the recorder is dropped without `finish` (the call task was killed),
//! `Drop` finishes it as a hang-up, so the audio is kept either way.
//!
//! Silence is judged on 20 ms blocks: a block whose RMS level is below
//! [`RecordOptions::silence_threshold_dbfs`] is silent. [`RecordOptions::silence_ms`] of continuous
//! silence stops the recording, counted from the start too (a caller who says nothing is not
//! recorded for the whole maximum length). Trailing silence is never written out as it comes: it
//! is held back, and when the recording ends (for any reason) only
//! [`RecordOptions::keep_silence_ms`] of it is kept, or none if nothing but silence was heard.
//!
//! A recording with no samples left (hung up at once, or silence only) is not kept: the
//! temporary file is removed and `finish` returns `Ok(None)`.
//!
//! Opus audio is encoded in 20 ms frames as the audio is written, so the held-back silence is
//! never encoded before it is known to be kept. The last encoded packet is held back too: only
//! when the recording ends is it known to be the last, and it is then written on a page with the
//! end-of-stream flag and a granule position that cuts the decoded audio to the exact length.
//!
//! Writes are synchronous (buffered, a 20 ms frame at a time): run the recorder where blocking
//! briefly is fine, or in `spawn_blocking`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

/// Length of a silence-detection block.
const BLOCK_MS: u32 = 20;

/// How often the WAV header is brought up to date (the Ogg pages flushed) while recording, so
/// that even a crash (no `Drop`) leaves a temporary file that covers nearly all the audio.
const HEADER_EVERY_MS: u64 = 5000;

/// Length of one Opus frame (one Ogg packet).
const OPUS_FRAME_MS: u32 = 20;

/// Opus packets per Ogg page: one second, so a player can seek to the second and a crash loses
/// at most the page being filled.
const OPUS_PACKETS_PER_PAGE: u64 = 50;

/// The largest Opus packet (RFC 6716, section 3.2.1): the encoder's output buffer.
const OPUS_MAX_PACKET: usize = 1275;

/// Granule positions of an Ogg Opus stream count samples at 48 kHz whatever the input rate.
const OPUS_GRANULE_RATE: u32 = 48_000;

/// The vendor string in the OpusTags header.
const OPUS_VENDOR: &str = "hub";

/// Why a recording could not be made or completed. Each names the file (or the bad name).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The name would escape the directory or is empty: `/`, `\`, `..`, NUL, a leading `.`.
    #[error("invalid recording name {name:?}")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// A sample rate of zero, or one the format cannot hold (Opus: 8, 12, 16, 24 or 48 kHz).
    #[error("{}: invalid sample rate {rate} Hz", .path.display())]
    InvalidRate {
        /// The file that would have been written.
        path: PathBuf,
        /// The rate given.
        rate: u32,
    },
    /// A recording with this name already exists: recordings are never overwritten.
    #[error("{}: recording already exists", .path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A file operation failed (including a temporary file left by another recorder of the same
    /// name, reported as `AlreadyExists`).
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Writing the WAV data or header failed.
    #[error("{}: {source}", .path.display())]
    Wav {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: hound::Error,
    },
    /// The Opus encoder could not be set up or refused a frame.
    #[error("{}: Opus encoder: {source}", .path.display())]
    Opus {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: opus::Error,
    },
}

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// [`RecordOptions::max_ms`] reached.
    MaxLength,
    /// [`RecordOptions::silence_ms`] of silence.
    Silence,
    /// The caller hung up (also the reason when a recorder is dropped unfinished).
    Hangup,
    /// The caller asked to stop (a key press).
    Requested,
    /// Writing failed; [`Recorder::finish`] returns the error.
    WriteFailed,
}

/// The file format of a recording.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecordFormat {
    /// `NAME.wav`, 16-bit PCM: plays everywhere and costs no CPU, but 16 kB per second at 8 kHz.
    #[default]
    Wav,
    /// `NAME.opus`, Opus in Ogg (RFC 7845): a tenth of the size for mailboxes kept long, played
    /// by browsers and most players; costs an encoder per recording.
    Opus,
}

impl RecordFormat {
    /// The file extension (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Opus => "opus",
        }
    }

    /// Whether a file of this format can hold audio at `rate` Hz.
    fn accepts_rate(self, rate: u32) -> bool {
        match self {
            Self::Wav => rate != 0 && rate <= 384_000,
            // The rates libopus encodes from directly.
            Self::Opus => matches!(rate, 8000 | 12_000 | 16_000 | 24_000 | 48_000),
        }
    }
}

/// How a recording is limited, and the file it is written to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordOptions {
    /// Longest recording in milliseconds (`None`: no limit). Voicemail must have one: a line
    /// left off-hook would otherwise fill the disk.
    pub max_ms: Option<u32>,
    /// Level in dBFS (RMS over 20 ms, 0 dBFS being a full-scale square wave, so a full-scale sine
    /// is -3 dBFS) below which audio counts as silence. Default -45 dBFS: telephone line noise
    /// sits around -60, quiet speech above -35.
    pub silence_threshold_dbfs: f32,
    /// Continuous silence that ends the recording, in milliseconds (`None`: never).
    pub silence_ms: Option<u32>,
    /// Trailing silence kept when a recording ends, so it does not stop abruptly.
    pub keep_silence_ms: u32,
    /// The file format (default WAV, which every tool reads).
    pub format: RecordFormat,
    /// A beep before recording, so the caller knows to speak (on by default; a script that
    /// says "speak after the tone" may want its own).
    pub beep: bool,
}

impl Default for RecordOptions {
    fn default() -> Self {
        Self {
            max_ms: Some(180_000),
            silence_threshold_dbfs: -45.0,
            silence_ms: Some(5000),
            keep_silence_ms: 200,
            format: RecordFormat::Wav,
            beep: true,
        }
    }
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The final file, `{dir}/{name}.wav` (or `.opus`).
    pub path: PathBuf,
    /// Its length in milliseconds (rounded down).
    pub duration_ms: u64,
    /// Why it ended.
    pub reason: StopReason,
    /// Number of samples in it.
    pub samples: u64,
}

/// Writes one recording. See the module docs for the file lifecycle.
pub struct Recorder {
    /// `None` once finished (so `Drop` knows there is nothing left to do).
    active: Option<Active>,
}

impl Recorder {
    /// Starts recording `{dir}/{name}.wav` (`.opus` in [`RecordFormat::Opus`]) at `rate` Hz.
    /// Fails, creating nothing, on a bad name or rate, or if the recording already exists.
    pub fn create(dir: &Path, name: &str, rate: u32, options: RecordOptions) -> Result<Self, RecordError> {
        if !valid_name(name) {
            return Err(RecordError::InvalidName { name: name.to_owned() });
        }
        let extension = options.format.extension();
        let final_path = dir.join(format!("{name}.{extension}"));
        if !options.format.accepts_rate(rate) {
            return Err(RecordError::InvalidRate { path: final_path, rate });
        }
        if final_path.try_exists().map_err(|source| RecordError::Io { path: final_path.clone(), source })? {
            return Err(RecordError::Exists { path: final_path });
        }
        // The recordings directory may not exist yet on a fresh install.
        std::fs::create_dir_all(dir).map_err(|source| RecordError::Io { path: dir.to_path_buf(), source })?;
        let temp = dir.join(format!(".{name}.{extension}.partial"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|source| RecordError::Io { path: temp.clone(), source })?;
        let opened =
            file.try_clone().map_err(|source| RecordError::Io { path: temp.clone(), source }).and_then(|sync| {
                let writer = BufWriter::new(file);
                let sink = match options.format {
                    RecordFormat::Wav => Sink::wav(writer, rate, &temp)?,
                    RecordFormat::Opus => Sink::Opus(Box::new(OggOpus::new(writer, rate, &temp)?)),
                };
                Ok((sync, sink))
            });
        let (sync, sink) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                remove_quietly(&temp);
                return Err(e);
            }
        };
        let samples = |ms: u32| u64::from(rate) * u64::from(ms) / 1000;
        let span = tracing::debug_span!("recording", path = %final_path.display(), rate);
        span.in_scope(|| tracing::debug!("recording started"));
        Ok(Self {
            active: Some(Active {
                sink,
                sync,
                temp,
                final_path,
                rate,
                block_len: (rate * BLOCK_MS / 1000).max(1) as usize,
                block: Vec::new(),
                tail: Vec::new(),
                heard: false,
                max_samples: options.max_ms.map(samples),
                silence_samples: options.silence_ms.map(|ms| samples(ms) as usize),
                keep_samples: samples(options.keep_silence_ms) as usize,
                threshold: mean_square_threshold(options.silence_threshold_dbfs),
                accepted: 0,
                written: 0,
                header_at: samples(HEADER_EVERY_MS as u32),
                stopped: None,
                error: None,
                span,
            }),
        })
    }

    /// Adds audio. Returns why the recording must stop once it must (and from then on, ignoring
    /// further audio); the caller then calls [`finish`](Self::finish) with that reason.
    pub fn push(&mut self, pcm: &[i16]) -> Option<StopReason> {
        let active = self.active.as_mut()?;
        let _enter = active.span.clone().entered();
        active.push(pcm)
    }

    /// Samples accepted so far (before trimming trailing silence): for a caller showing progress.
    pub fn samples(&self) -> u64 {
        self.active.as_ref().map_or(0, |a| a.accepted)
    }

    /// Completes the recording: writes the header, syncs it to disk and renames it to its final
    /// name. `reason` is recorded unless the recorder had already stopped itself (then its own
    /// reason is). `Ok(None)` when no audio was kept; nothing is left on disk then.
    pub fn finish(mut self, reason: StopReason) -> Result<Option<Recording>, RecordError> {
        match self.active.take() {
            Some(active) => active.complete(reason),
            None => Ok(None),
        }
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Recorder");
        if let Some(active) = &self.active {
            d.field("path", &active.final_path).field("accepted", &active.accepted).field("stopped", &active.stopped);
        }
        d.finish_non_exhaustive()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let Some(active) = self.active.take() else { return };
        let span = active.span.clone();
        let _enter = span.enter();
        match active.complete(StopReason::Hangup) {
            Ok(Some(recording)) => {
                tracing::info!(duration_ms = recording.duration_ms, "recording finished on drop");
            }
            Ok(None) => tracing::debug!("empty recording discarded on drop"),
            Err(error) => tracing::error!(%error, "recording lost on drop"),
        }
    }
}

/// A recording in progress.
struct Active {
    sink: Sink,
    /// A second handle on the file, to fsync it after the writer is done with the first.
    sync: File,
    temp: PathBuf,
    final_path: PathBuf,
    rate: u32,
    /// Samples per silence-detection block.
    block_len: usize,
    /// The block being filled.
    block: Vec<i16>,
    /// Silent blocks not yet written (only while silence detection is on).
    tail: Vec<i16>,
    /// Whether a non-silent block was heard.
    heard: bool,
    max_samples: Option<u64>,
    silence_samples: Option<usize>,
    keep_samples: usize,
    /// Mean square (of i16 samples) below which a block is silent.
    threshold: f64,
    /// Samples taken in (written, held in `tail` or `block`).
    accepted: u64,
    /// Samples written to the file.
    written: u64,
    /// `written` count at which to next update the header.
    header_at: u64,
    stopped: Option<StopReason>,
    /// The first write error; reported by `complete`.
    error: Option<RecordError>,
    span: tracing::Span,
}

impl Active {
    fn push(&mut self, mut pcm: &[i16]) -> Option<StopReason> {
        if self.stopped.is_some() {
            return self.stopped;
        }
        let mut at_max = false;
        if let Some(max) = self.max_samples {
            let room = usize::try_from(max.saturating_sub(self.accepted)).unwrap_or(usize::MAX);
            if pcm.len() >= room {
                pcm = &pcm[..room];
                at_max = true;
            }
        }
        self.accepted += pcm.len() as u64;
        if self.silence_samples.is_none() {
            self.write(pcm);
        } else {
            while !pcm.is_empty() {
                let take = (self.block_len - self.block.len()).min(pcm.len());
                self.block.extend_from_slice(&pcm[..take]);
                pcm = &pcm[take..];
                if self.block.len() == self.block_len {
                    self.end_block();
                    if self.stopped.is_some() {
                        break;
                    }
                }
            }
        }
        if self.error.is_some() {
            self.stopped = Some(StopReason::WriteFailed);
        } else if at_max && self.stopped.is_none() {
            self.stopped = Some(StopReason::MaxLength);
        }
        if let Some(reason) = self.stopped {
            tracing::debug!(?reason, samples = self.accepted, "recording stopped");
        }
        self.stopped
    }

    /// Classifies the full (or, at the end, partial) block and writes or holds it.
    fn end_block(&mut self) {
        let block = std::mem::take(&mut self.block);
        if mean_square(&block) < self.threshold {
            self.tail.extend_from_slice(&block);
            if self.silence_samples.is_some_and(|limit| self.tail.len() >= limit) {
                self.stopped = Some(StopReason::Silence);
            }
        } else {
            self.heard = true;
            let tail = std::mem::take(&mut self.tail);
            self.write(&tail);
            self.write(&block);
            self.tail = tail;
            self.tail.clear();
        }
        self.block = block;
        self.block.clear();
    }

    fn write(&mut self, pcm: &[i16]) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.sink.write(pcm, &self.temp) {
            self.error = Some(e);
            return;
        }
        self.written += pcm.len() as u64;
        if self.written >= self.header_at {
            self.header_at += u64::from(self.rate) * HEADER_EVERY_MS / 1000;
            if let Err(e) = self.sink.flush(&self.temp) {
                self.error = Some(e);
            }
        }
    }

    fn complete(mut self, reason: StopReason) -> Result<Option<Recording>, RecordError> {
        let reason = self.stopped.unwrap_or(reason);
        if !self.block.is_empty() {
            self.end_block();
        }
        // Trailing silence: a little of it after speech, none if there was never speech.
        let keep = if self.heard { self.keep_samples.min(self.tail.len()) } else { 0 };
        let tail = std::mem::take(&mut self.tail);
        self.write(&tail[..keep]);
        if let Some(error) = self.error.take() {
            remove_quietly(&self.temp);
            return Err(error);
        }
        let temp = self.temp;
        if let Err(e) = self.sink.finish(self.written, &temp) {
            remove_quietly(&temp);
            return Err(e);
        }
        if self.written == 0 {
            remove_quietly(&temp);
            tracing::debug!(?reason, "empty recording discarded");
            return Ok(None);
        }
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |source| RecordError::Io { path, source }
        };
        if let Err(e) = self.sync.sync_all() {
            remove_quietly(&temp);
            return Err(io_error(&temp)(e));
        }
        std::fs::rename(&temp, &self.final_path).map_err(io_error(&temp))?;
        // Make the rename itself durable.
        if let Some(dir) = self.final_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir))?;
        }
        let recording = Recording {
            path: self.final_path,
            duration_ms: self.written * 1000 / u64::from(self.rate),
            reason,
            samples: self.written,
        };
        tracing::debug!(?reason, duration_ms = recording.duration_ms, "recording finished");
        Ok(Some(recording))
    }
}

/// The encoder and file writer of one format.
enum Sink {
    Wav(hound::WavWriter<BufWriter<File>>),
    /// Boxed: the packet buffer is large and the WAV writer is not.
    Opus(Box<OggOpus>),
}

impl Sink {
    fn wav(writer: BufWriter<File>, rate: u32, path: &Path) -> Result<Self, RecordError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        hound::WavWriter::new(writer, spec)
            .map(Self::Wav)
            .map_err(|source| RecordError::Wav { path: path.to_owned(), source })
    }

    /// Appends samples (errors name `path`, the temporary file).
    fn write(&mut self, pcm: &[i16], path: &Path) -> Result<(), RecordError> {
        match self {
            Self::Wav(writer) => {
                for &sample in pcm {
                    writer.write_sample(sample).map_err(|source| RecordError::Wav { path: path.to_owned(), source })?;
                }
                Ok(())
            }
            Self::Opus(opus) => opus.write(pcm, path),
        }
    }

    /// Brings the file on disk up to date with what was written (not synced).
    fn flush(&mut self, path: &Path) -> Result<(), RecordError> {
        match self {
            Self::Wav(writer) => writer.flush().map_err(|source| RecordError::Wav { path: path.to_owned(), source }),
            Self::Opus(opus) => {
                opus.ogg.inner_mut().flush().map_err(|source| RecordError::Io { path: path.to_owned(), source })
            }
        }
    }

    /// Completes the file, whose audio is `samples` long.
    fn finish(self, samples: u64, path: &Path) -> Result<(), RecordError> {
        match self {
            Self::Wav(writer) => writer.finalize().map_err(|source| RecordError::Wav { path: path.to_owned(), source }),
            Self::Opus(opus) => opus.finish(samples, path),
        }
    }
}

/// An Ogg Opus stream being written: OpusHead and OpusTags pages, then 20 ms packets.
struct OggOpus {
    ogg: PacketWriter<'static, BufWriter<File>>,
    encoder: opus::Encoder,
    /// The Ogg logical stream's serial number (random, as RFC 3533 asks).
    serial: u32,
    /// Samples per frame at the input rate.
    frame_len: usize,
    /// The frame being filled.
    frame: Vec<i16>,
    /// 48 kHz granule units per input sample (6 at 8 kHz, 3 at 16 kHz).
    scale: u64,
    /// The encoder's delay at the input rate: this much more audio (zeros) is encoded at the end,
    /// so the decoder, which drops [`Self::pre_skip`] at the start, still plays every sample.
    lookahead: u64,
    /// The encoder's delay in 48 kHz samples (OpusHead's pre-skip).
    pre_skip: u64,
    /// Frames encoded.
    encoded: u64,
    /// Packets written to the Ogg stream.
    emitted: u64,
    /// The last encoded packet, not yet written: the last one is written differently.
    held: Option<Vec<u8>>,
    /// Encoder output.
    packet: [u8; OPUS_MAX_PACKET],
}

impl OggOpus {
    /// Sets up the encoder and writes the two header pages.
    fn new(writer: BufWriter<File>, rate: u32, path: &Path) -> Result<Self, RecordError> {
        let opus_error = |source| RecordError::Opus { path: path.to_owned(), source };
        let mut encoder =
            opus::Encoder::new(rate, opus::Channels::Mono, opus::Application::Voip).map_err(opus_error)?;
        let lookahead = u64::try_from(encoder.get_lookahead().map_err(opus_error)?).unwrap_or(0);
        let scale = u64::from(OPUS_GRANULE_RATE / rate);
        let mut stream = Self {
            ogg: PacketWriter::new(writer),
            encoder,
            serial: rand::random(),
            frame_len: (rate * OPUS_FRAME_MS / 1000) as usize,
            frame: Vec::new(),
            scale,
            lookahead,
            pre_skip: lookahead * scale,
            encoded: 0,
            emitted: 0,
            held: None,
            packet: [0; OPUS_MAX_PACKET],
        };
        stream.frame.reserve(stream.frame_len);
        // RFC 7845 section 5.1: each header packet alone on its page, granule position 0.
        let head = opus_head(u16::try_from(stream.pre_skip).unwrap_or(u16::MAX), rate);
        let tags = opus_tags(OPUS_VENDOR);
        let io_error = |source| RecordError::Io { path: path.to_owned(), source };
        stream.ogg.write_packet(head, stream.serial, PacketWriteEndInfo::EndPage, 0).map_err(io_error)?;
        stream.ogg.write_packet(tags, stream.serial, PacketWriteEndInfo::EndPage, 0).map_err(io_error)?;
        Ok(stream)
    }

    fn write(&mut self, mut pcm: &[i16], path: &Path) -> Result<(), RecordError> {
        while !pcm.is_empty() {
            let take = (self.frame_len - self.frame.len()).min(pcm.len());
            self.frame.extend_from_slice(&pcm[..take]);
            pcm = &pcm[take..];
            if self.frame.len() == self.frame_len {
                self.encode_frame(path)?;
            }
        }
        Ok(())
    }

    /// Encodes the full frame; writes the packet held back before it.
    fn encode_frame(&mut self, path: &Path) -> Result<(), RecordError> {
        let len = self
            .encoder
            .encode(&self.frame, &mut self.packet[..])
            .map_err(|source| RecordError::Opus { path: path.to_owned(), source })?;
        self.frame.clear();
        self.encoded += 1;
        match self.held.replace(self.packet[..len].to_vec()) {
            Some(previous) => self.emit(previous, None, path),
            None => Ok(()),
        }
    }

    /// Writes a packet, ending its page every second, or ending the stream with `end_granule`.
    fn emit(&mut self, packet: Vec<u8>, end_granule: Option<u64>, path: &Path) -> Result<(), RecordError> {
        self.emitted += 1;
        let frame_granule = u64::from(OPUS_GRANULE_RATE * OPUS_FRAME_MS / 1000);
        let (info, granule) = match end_granule {
            Some(granule) => (PacketWriteEndInfo::EndStream, granule),
            None if self.emitted.is_multiple_of(OPUS_PACKETS_PER_PAGE) => {
                (PacketWriteEndInfo::EndPage, self.emitted * frame_granule)
            }
            None => (PacketWriteEndInfo::NormalPacket, self.emitted * frame_granule),
        };
        self.ogg
            .write_packet(packet, self.serial, info, granule)
            .map_err(|source| RecordError::Io { path: path.to_owned(), source })
    }

    /// Encodes the rest of the audio (`samples` in all) and the encoder's delay, padded with
    /// zeros to whole frames, and ends the stream at exactly `samples`.
    fn finish(mut self, samples: u64, path: &Path) -> Result<(), RecordError> {
        if samples > 0 {
            while self.encoded * (self.frame_len as u64) < samples + self.lookahead {
                self.frame.resize(self.frame_len, 0);
                self.encode_frame(path)?;
            }
        }
        if let Some(last) = self.held.take() {
            // RFC 7845 section 4.4: a last granule position below the decoded length trims the
            // padding off the end.
            self.emit(last, Some(self.pre_skip + samples * self.scale), path)?;
        }
        self.ogg.inner_mut().flush().map_err(|source| RecordError::Io { path: path.to_owned(), source })
    }
}

/// The OpusHead packet (RFC 7845 section 5.1) of a mono stream.
fn opus_head(pre_skip: u16, input_rate: u32) -> Vec<u8> {
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(1); // channel count
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&input_rate.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family: mono/stereo, no table
    head
}

/// The OpusTags packet (RFC 7845 section 5.2) with no user comments.
fn opus_tags(vendor: &str) -> Vec<u8> {
    let mut tags = Vec::with_capacity(16 + vendor.len());
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor.as_bytes());
    tags.extend_from_slice(&0u32.to_le_bytes()); // user comment list length
    tags
}

/// A name that stays inside the directory and cannot collide with temporary files.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains("..")
        && !name.chars().any(|c| matches!(c, '/' | '\\' | '\0'))
}

/// Mean square of the samples (0 for none).
fn mean_square(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return 0.0;
    }
    pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / pcm.len() as f64
}

/// The mean square of i16 samples at `dbfs` RMS.
fn mean_square_threshold(dbfs: f32) -> f64 {
    let full_scale = 32768.0_f64 * 32768.0;
    full_scale * 10f64.powf(f64::from(dbfs) / 10.0)
}

/// Removes a temporary file on an error path; failing to is only worth a log line.
fn remove_quietly(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "cannot remove temporary recording");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 8000;

    fn tone(ms: u32, hz: f32) -> Vec<i16> {
        tone_at(RATE, ms, hz)
    }

    fn tone_at(rate: u32, ms: u32, hz: f32) -> Vec<i16> {
        let n = (rate * ms / 1000) as usize;
        (0..n).map(|i| (8000.0 * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin()) as i16).collect()
    }

    /// Line noise around -60 dBFS: silence to the detector, but not digital zero.
    fn hiss(ms: u32) -> Vec<i16> {
        let n = (RATE * ms / 1000) as usize;
        (0..n).map(|i| ((i * 7919 % 61) as i16) - 30).collect()
    }

    /// Pushes `pcm` in 20 ms frames, returning the first stop reason and the sample count at it.
    fn feed(rec: &mut Recorder, pcm: &[i16]) -> Option<(StopReason, u64)> {
        for frame in pcm.chunks(160) {
            if let Some(reason) = rec.push(frame) {
                return Some((reason, rec.samples()));
            }
        }
        None
    }

    fn read(path: &Path) -> (hound::WavSpec, Vec<i16>) {
        let mut reader = hound::WavReader::open(path).unwrap();
        let samples = reader.samples::<i16>().map(Result::unwrap).collect();
        (reader.spec(), samples)
    }

    fn goertzel(pcm: &[i16], hz: f32) -> f64 {
        crate::media::goertzel::tone_power(pcm, RATE, hz)
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_tone_then_hang_up_gives_a_valid_wav_of_that_length() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::create(dir.path(), "msg", RATE, RecordOptions::default()).unwrap();
        assert_eq!(feed(&mut rec, &tone(2000, 1000.0)), None);
        let recording = rec.finish(StopReason::Hangup).unwrap().unwrap();
        assert_eq!(recording.path, dir.path().join("msg.wav"));
        assert_eq!(recording.reason, StopReason::Hangup);
        assert!(recording.duration_ms.abs_diff(2000) <= 20, "{}", recording.duration_ms);
        let (spec, samples) = read(&recording.path);
        assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (1, RATE, 16));
        assert_eq!(samples.len() as u64, recording.samples);
        assert!((samples.len() as i64 - 16_000).abs() <= 160);
        let on = goertzel(&samples, 1000.0);
        assert!(on > 1e6 && on > 100.0 * goertzel(&samples, 1700.0), "{on}");
        assert_eq!(files(dir.path()), ["msg.wav"], "no temporary file left");
    }

    #[test]
    fn max_length_cuts_at_exactly_the_maximum() {
        let dir = tempfile::tempdir().unwrap();
        let options = RecordOptions { max_ms: Some(1500), ..RecordOptions::default() };
        let mut rec = Recorder::create(dir.path(), "max", RATE, options).unwrap();
        // Odd-sized pushes, so the limit falls inside one.
        let pcm = tone(3000, 440.0);
        let mut stop = None;
        for chunk in pcm.chunks(333) {
            if let Some(reason) = rec.push(chunk) {
                stop = Some(reason);
                break;
            }
        }
        assert_eq!(stop, Some(StopReason::MaxLength));
        assert_eq!(rec.push(&pcm[..160]), Some(StopReason::MaxLength), "stays stopped");
        let recording = rec.finish(StopReason::Hangup).unwrap().unwrap();
        assert_eq!(recording.reason, StopReason::MaxLength, "the recorder's own reason wins");
        assert_eq!(recording.samples, 12_000);
        assert_eq!(recording.duration_ms, 1500);
        assert_eq!(read(&recording.path).1, pcm[..12_000]);
    }

    #[test]
    fn silence_stops_the_recording_and_the_silent_tail_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let options = RecordOptions { silence_ms: Some(3000), ..RecordOptions::default() };
        let mut rec = Recorder::create(dir.path(), "quiet", RATE, options).unwrap();
        assert_eq!(feed(&mut rec, &tone(1000, 440.0)), None);
        let (reason, at) = feed(&mut rec, &hiss(5000)).unwrap();
        assert_eq!(reason, StopReason::Silence);
        assert!(at.abs_diff(32_000) <= 160, "stops 3 s into the silence: {at}");
        let recording = rec.finish(reason).unwrap().unwrap();
        assert!(recording.duration_ms.abs_diff(1200) <= 20, "1 s of tone + 200 ms: {}", recording.duration_ms);
        let samples = read(&recording.path).1;
        assert!(samples[samples.len() - 1500..].iter().all(|s| s.abs() <= 30), "the kept tail is the silence");
    }

    #[test]
    fn silence_inside_speech_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let options = RecordOptions { silence_ms: Some(3000), ..RecordOptions::default() };
        let mut rec = Recorder::create(dir.path(), "pause", RATE, options).unwrap();
        for part in [tone(500, 440.0), hiss(2000), tone(500, 440.0)] {
            assert_eq!(feed(&mut rec, &part), None);
        }
        let recording = rec.finish(StopReason::Requested).unwrap().unwrap();
        assert_eq!(recording.samples, 24_000);
        assert_eq!(recording.reason, StopReason::Requested);
    }

    #[test]
    fn only_silence_or_nothing_keeps_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::create(dir.path(), "nothing", RATE, RecordOptions::default()).unwrap();
        assert_eq!(rec.finish(StopReason::Hangup).unwrap(), None);

        let options = RecordOptions { silence_ms: Some(1000), ..RecordOptions::default() };
        let mut rec = Recorder::create(dir.path(), "hiss", RATE, options).unwrap();
        assert_eq!(feed(&mut rec, &hiss(2000)).map(|(r, _)| r), Some(StopReason::Silence), "counted from the start");
        assert_eq!(rec.finish(StopReason::Silence).unwrap(), None);

        drop(Recorder::create(dir.path(), "dropped", RATE, RecordOptions::default()).unwrap());
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    #[test]
    fn the_final_name_appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::create(dir.path(), "atomic", RATE, RecordOptions::default()).unwrap();
        feed(&mut rec, &tone(500, 440.0));
        assert_eq!(files(dir.path()), [".atomic.wav.partial"]);
        let again = Recorder::create(dir.path(), "atomic", RATE, RecordOptions::default()).unwrap_err();
        assert!(matches!(&again, RecordError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists));
        rec.finish(StopReason::Requested).unwrap().unwrap();
        assert_eq!(files(dir.path()), ["atomic.wav"]);
        let exists = Recorder::create(dir.path(), "atomic", RATE, RecordOptions::default()).unwrap_err();
        assert!(matches!(exists, RecordError::Exists { .. }), "never overwritten");
        assert!(exists.to_string().contains("atomic.wav"), "{exists}");
    }

    #[test]
    fn dropping_mid_recording_leaves_a_valid_wav() {
        let dir = tempfile::tempdir().unwrap();
        let rate = 48_000;
        let mut rec = Recorder::create(dir.path(), "killed", rate, RecordOptions::default()).unwrap();
        let pcm: Vec<i16> = (0..72_000).map(|i| ((i % 96) as i16 - 48) * 200).collect();
        for frame in pcm.chunks(960) {
            assert_eq!(rec.push(frame), None);
        }
        drop(rec);
        assert_eq!(files(dir.path()), ["killed.wav"]);
        let (spec, samples) = read(&dir.path().join("killed.wav"));
        assert_eq!(spec.sample_rate, rate);
        assert_eq!(samples, pcm);
    }

    #[test]
    fn bad_names_are_rejected_without_creating_anything() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "a/b", "..", "../up", "a\\b", ".hidden", "nul\0"] {
            let err = Recorder::create(dir.path(), name, RATE, RecordOptions::default()).unwrap_err();
            assert!(matches!(err, RecordError::InvalidName { .. }), "{name:?}: {err:?}");
        }
        let err = Recorder::create(dir.path(), "ok", 0, RecordOptions::default()).unwrap_err();
        assert!(matches!(err, RecordError::InvalidRate { .. }), "{err:?}");
        assert!(files(dir.path()).is_empty());
        // A directory that cannot be made (a file is in the way) is an error naming it.
        std::fs::write(dir.path().join("blocker"), b"").unwrap();
        let err = Recorder::create(&dir.path().join("blocker/sub"), "ok", RATE, RecordOptions::default()).unwrap_err();
        assert!(matches!(err, RecordError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("blocker"), "{err}");
    }

    #[test]
    fn a_missing_recordings_directory_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("recordings/voicemail");
        let mut rec = Recorder::create(&nested, "first", RATE, RecordOptions::default()).unwrap();
        rec.push(&vec![8000; 1600]);
        let done = rec.finish(StopReason::Hangup).unwrap().unwrap();
        assert_eq!(done.path, nested.join("first.wav"));
    }

    #[test]
    fn the_threshold_is_in_dbfs() {
        // A full-scale square wave is 0 dBFS; -6 dBFS is half its amplitude.
        assert!((mean_square_threshold(0.0) - 32768.0 * 32768.0).abs() < 1.0);
        assert!((mean_square_threshold(-6.0206).sqrt() - 16384.0).abs() < 1.0);
        assert!(mean_square(&hiss(20)) < mean_square_threshold(-45.0));
        assert!(mean_square(&tone(20, 440.0)) > mean_square_threshold(-45.0));
    }

    // Ogg Opus. The files are read back with a page parser of the tests' own (not the `ogg` crate
    // that wrote them), so a CRC or flag the writer gets wrong is caught.

    const OPUS: RecordOptions = RecordOptions {
        max_ms: Some(180_000),
        silence_threshold_dbfs: -45.0,
        silence_ms: Some(5000),
        keep_silence_ms: 200,
        format: RecordFormat::Opus,
        beep: true,
    };

    /// One Ogg page (RFC 3533 section 6).
    struct Page {
        flags: u8,
        granule: u64,
        serial: u32,
        sequence: u32,
        lacing: Vec<u8>,
        body: Vec<u8>,
    }

    /// The Ogg CRC: polynomial 0x04c11db7, initial value 0, not reflected, no final XOR.
    fn ogg_crc(data: &[u8]) -> u32 {
        let mut crc = 0u32;
        for &byte in data {
            crc ^= u32::from(byte) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04c1_1db7 } else { crc << 1 };
            }
        }
        crc
    }

    /// Splits a file into pages, checking the capture pattern, version and CRC of each.
    fn ogg_pages(mut bytes: &[u8]) -> Vec<Page> {
        let le32 = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap());
        let mut pages = Vec::new();
        while !bytes.is_empty() {
            assert_eq!((&bytes[..4], bytes[4]), (&b"OggS"[..], 0), "page {} header", pages.len());
            let segments = usize::from(bytes[26]);
            let lacing = bytes[27..27 + segments].to_vec();
            let len = 27 + segments + lacing.iter().map(|&l| usize::from(l)).sum::<usize>();
            let mut zeroed = bytes[..len].to_vec();
            zeroed[22..26].fill(0);
            assert_eq!(ogg_crc(&zeroed), le32(&bytes[22..26]), "CRC of page {}", pages.len());
            pages.push(Page {
                flags: bytes[5],
                granule: u64::from_le_bytes(bytes[6..14].try_into().unwrap()),
                serial: le32(&bytes[14..18]),
                sequence: le32(&bytes[18..22]),
                lacing,
                body: bytes[27 + segments..len].to_vec(),
            });
            bytes = &bytes[len..];
        }
        pages
    }

    /// The packets of `pages`, each with the index of the page it ends on.
    fn ogg_packets(pages: &[Page]) -> Vec<(Vec<u8>, usize)> {
        let mut packets = Vec::new();
        let mut current = Vec::new();
        for (i, page) in pages.iter().enumerate() {
            assert_eq!(page.flags & 1 != 0, !current.is_empty(), "continuation flag of page {i}");
            let mut at = 0;
            for &l in &page.lacing {
                current.extend_from_slice(&page.body[at..at + usize::from(l)]);
                at += usize::from(l);
                if l < 255 {
                    packets.push((std::mem::take(&mut current), i));
                }
            }
        }
        assert!(current.is_empty(), "the last packet is unfinished");
        packets
    }

    /// What an Ogg Opus file holds, checked against RFC 7845 on the way.
    struct OpusFile {
        /// OpusHead fields.
        pre_skip: u64,
        input_rate: u32,
        /// Granule position of the last page.
        final_granule: u64,
        /// Audio packets.
        packets: usize,
        /// Decoded at 48 kHz, pre-skip and end trimming applied: what a player plays.
        pcm: Vec<i16>,
    }

    fn read_opus(path: &Path) -> OpusFile {
        let pages = ogg_pages(&std::fs::read(path).unwrap());
        assert!(pages.len() >= 3, "{} pages", pages.len());
        for (i, page) in pages.iter().enumerate() {
            assert_eq!(page.serial, pages[0].serial, "one logical stream");
            assert_eq!(page.sequence as usize, i, "page sequence numbers");
            assert_eq!(page.flags & 2 != 0, i == 0, "beginning-of-stream flag on the first page only");
            assert_eq!(page.flags & 4 != 0, i == pages.len() - 1, "end-of-stream flag on the last page only");
        }
        let packets = ogg_packets(&pages);
        // OpusHead alone on the first page, OpusTags alone on the second, both at granule 0.
        let (head, tags) = (&packets[0], &packets[1]);
        assert_eq!((head.1, tags.1, pages[0].lacing.len()), (0, 1, 1));
        assert_eq!((pages[0].granule, pages[1].granule), (0, 0));
        assert_eq!(head.0.len(), 19);
        assert_eq!(&head.0[..8], b"OpusHead");
        assert_eq!((head.0[8], head.0[9]), (1, 1), "version 1, one channel");
        let pre_skip = u64::from(u16::from_le_bytes([head.0[10], head.0[11]]));
        let input_rate = u32::from_le_bytes(head.0[12..16].try_into().unwrap());
        assert_eq!((&head.0[16..18], head.0[18]), (&[0, 0][..], 0), "output gain 0, mapping family 0");
        assert_eq!(tags.0, b"OpusTags\x03\0\0\0hub\0\0\0\0");
        let audio = &packets[2..];
        assert_eq!(audio[0].1, 2, "audio starts on a fresh page");
        let mut decoder = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let mut decoded = Vec::new();
        let mut out = [0i16; 5760];
        for (packet, _) in audio {
            assert_eq!(decoder.get_nb_samples(packet).unwrap(), 960, "20 ms frames");
            let n = decoder.decode(packet, &mut out, false).unwrap();
            decoded.extend_from_slice(&out[..n]);
        }
        let final_granule = pages.last().unwrap().granule;
        // RFC 7845 section 4.4: the end trimming cuts into the last packet only.
        let total = decoded.len() as u64;
        assert!(final_granule <= total && final_granule > total - 960, "{final_granule} of {total}");
        let pcm = decoded[pre_skip as usize..final_granule as usize].to_vec();
        OpusFile { pre_skip, input_rate, final_granule, packets: audio.len(), pcm }
    }

    /// Records 2 s of a 1 kHz tone at `rate` and checks what a player would play.
    fn an_opus_tone_plays_back(rate: u32) {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::create(dir.path(), "msg", rate, OPUS).unwrap();
        let pcm = tone_at(rate, 2000, 1000.0);
        for frame in pcm.chunks(rate as usize / 50) {
            assert_eq!(rec.push(frame), None);
        }
        let recording = rec.finish(StopReason::Hangup).unwrap().unwrap();
        assert_eq!(recording.path, dir.path().join("msg.opus"));
        assert_eq!((recording.samples, recording.duration_ms), (pcm.len() as u64, 2000));
        assert_eq!(files(dir.path()), ["msg.opus"], "no temporary file left");

        let file = read_opus(&recording.path);
        let scale = u64::from(48_000 / rate);
        assert_eq!(file.input_rate, rate);
        assert!(file.pre_skip > 0 && file.pre_skip < 960, "the encoder's lookahead: {}", file.pre_skip);
        assert_eq!(file.final_granule, file.pre_skip + recording.samples * scale, "players show the right length");
        assert_eq!(file.pcm.len() as u64, recording.samples * scale, "exactly 2 s plays");
        // Skip the codec's onset; the level survives within a few dB and the tone dominates.
        let played = &file.pcm[4800..];
        let on = crate::media::goertzel::tone_power(played, 48_000, 1000.0);
        let sent = crate::media::goertzel::tone_power(&pcm, rate, 1000.0);
        assert!(on > sent / 2.0, "{on} vs {sent} sent");
        assert!(on > 100.0 * crate::media::goertzel::tone_power(played, 48_000, 1700.0), "{on}");
    }

    #[test]
    fn an_opus_recording_at_16_khz_plays_back_the_tone_at_its_length() {
        an_opus_tone_plays_back(16_000);
    }

    #[test]
    fn an_opus_recording_at_8_khz_plays_back_the_tone_at_its_length() {
        an_opus_tone_plays_back(8000);
    }

    #[test]
    fn the_ogg_crc_is_the_one_ogg_specifies() {
        // CRC-32/POSIX (cksum) check value 0x765e7680, without its final XOR.
        assert_eq!(ogg_crc(b"123456789"), !0x765e_7680);
    }

    #[test]
    fn an_opus_recordings_silent_tail_is_trimmed_before_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let options = RecordOptions { silence_ms: Some(3000), ..OPUS };
        let mut rec = Recorder::create(dir.path(), "quiet", RATE, options).unwrap();
        assert_eq!(feed(&mut rec, &tone(1000, 440.0)), None);
        let (reason, _) = feed(&mut rec, &hiss(5000)).unwrap();
        assert_eq!(reason, StopReason::Silence);
        let recording = rec.finish(reason).unwrap().unwrap();
        assert_eq!(recording.samples, 9600, "1 s of tone + 200 ms");
        let file = read_opus(&recording.path);
        assert_eq!(file.pcm.len(), 9600 * 6);
        // Only the kept audio (plus the encoder's delay) was encoded: not the 3 s of silence.
        let lookahead = file.pre_skip / 6;
        assert_eq!(file.packets as u64, (9600 + lookahead).div_ceil(160));
        let rms = |pcm: &[i16]| mean_square(pcm).sqrt();
        assert!(rms(&file.pcm[file.pcm.len() - 4800..]) < 100.0, "the kept tail is the silence");
        assert!(rms(&file.pcm[..48_000]) > 3000.0, "the tone");
    }

    #[test]
    fn hanging_up_mid_opus_recording_leaves_a_complete_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::create(dir.path(), "killed", 16_000, OPUS).unwrap();
        let pcm = tone_at(16_000, 3500, 1000.0);
        for frame in pcm.chunks(320) {
            assert_eq!(rec.push(frame), None);
        }
        assert_eq!(files(dir.path()), [".killed.opus.partial"]);
        drop(rec);
        assert_eq!(files(dir.path()), ["killed.opus"]);
        let file = read_opus(&dir.path().join("killed.opus"));
        assert_eq!(file.pcm.len(), 3500 * 48, "all of it, ended properly (EOS, granule) on drop");

        let mut rec = Recorder::create(dir.path(), "hangup", 16_000, OPUS).unwrap();
        rec.push(&pcm[..16_000]);
        let recording = rec.finish(StopReason::Hangup).unwrap().unwrap();
        assert_eq!((recording.reason, recording.duration_ms), (StopReason::Hangup, 1000));
        assert_eq!(read_opus(&recording.path).pcm.len(), 48_000);
        assert_eq!(files(dir.path()), ["hangup.opus", "killed.opus"]);
    }

    #[test]
    fn only_silence_or_nothing_keeps_no_opus_file() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::create(dir.path(), "nothing", RATE, OPUS).unwrap();
        assert_eq!(rec.finish(StopReason::Hangup).unwrap(), None);
        let options = RecordOptions { silence_ms: Some(1000), ..OPUS };
        let mut rec = Recorder::create(dir.path(), "hiss", RATE, options).unwrap();
        assert_eq!(feed(&mut rec, &hiss(2000)).map(|(r, _)| r), Some(StopReason::Silence));
        assert_eq!(rec.finish(StopReason::Silence).unwrap(), None);
        drop(Recorder::create(dir.path(), "dropped", RATE, OPUS).unwrap());
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    #[test]
    fn opus_takes_only_the_rates_its_encoder_takes() {
        let dir = tempfile::tempdir().unwrap();
        let err = Recorder::create(dir.path(), "cd", 44_100, OPUS).unwrap_err();
        assert!(matches!(err, RecordError::InvalidRate { rate: 44_100, .. }), "{err:?}");
        assert!(err.to_string().contains("cd.opus"), "{err}");
        assert!(files(dir.path()).is_empty());
        assert_eq!(RecordOptions::default().format, RecordFormat::Wav, "WAV unless configured");
    }
}
