//! Recording a caller to a WAV file (16-bit mono PCM), for voicemail and call recording.
//!
//! The file is written under a hidden temporary name (`.{name}.wav.partial`) and renamed to
//! `{name}.wav` only once its header is final and its data is on disk, so anything that lists the
//! directory (the web UI, the voicemail index) never sees a half-written recording.
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
//! Writes are synchronous (buffered, a 20 ms frame at a time): run the recorder where blocking
//! briefly is fine, or in `spawn_blocking`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

/// Length of a silence-detection block.
const BLOCK_MS: u32 = 20;

/// How often the WAV header is brought up to date while recording, so that even a crash (no
/// `Drop`) leaves a temporary file whose header covers nearly all the audio.
const HEADER_EVERY_MS: u64 = 5000;

/// Why a recording could not be made or completed. Each names the file (or the bad name).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The name would escape the directory or is empty: `/`, `\`, `..`, NUL, a leading `.`.
    #[error("invalid recording name {name:?}")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// A sample rate of zero, or one a WAV file cannot hold.
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

/// How a recording is limited.
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
}

impl Default for RecordOptions {
    fn default() -> Self {
        Self { max_ms: Some(180_000), silence_threshold_dbfs: -45.0, silence_ms: Some(5000), keep_silence_ms: 200 }
    }
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    /// The final file, `{dir}/{name}.wav`.
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
    /// Starts recording `{dir}/{name}.wav` at `rate` Hz. Fails, creating nothing, on a bad name or
    /// rate, or if the recording already exists.
    pub fn create(dir: &Path, name: &str, rate: u32, options: RecordOptions) -> Result<Self, RecordError> {
        if !valid_name(name) {
            return Err(RecordError::InvalidName { name: name.to_owned() });
        }
        let final_path = dir.join(format!("{name}.wav"));
        if rate == 0 || rate > 384_000 {
            return Err(RecordError::InvalidRate { path: final_path, rate });
        }
        if final_path.try_exists().map_err(|source| RecordError::Io { path: final_path.clone(), source })? {
            return Err(RecordError::Exists { path: final_path });
        }
        // The recordings directory may not exist yet on a fresh install.
        std::fs::create_dir_all(dir).map_err(|source| RecordError::Io { path: dir.to_path_buf(), source })?;
        let temp = dir.join(format!(".{name}.wav.partial"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|source| RecordError::Io { path: temp.clone(), source })?;
        let opened =
            file.try_clone().map_err(|source| RecordError::Io { path: temp.clone(), source }).and_then(|sync| {
                let spec = hound::WavSpec {
                    channels: 1,
                    sample_rate: rate,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                let writer = hound::WavWriter::new(BufWriter::new(file), spec)
                    .map_err(|source| RecordError::Wav { path: temp.clone(), source })?;
                Ok((sync, writer))
            });
        let (sync, writer) = match opened {
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
                writer,
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
    writer: hound::WavWriter<BufWriter<File>>,
    /// A second handle on the file, to fsync it after hound is done with the first.
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
        for &sample in pcm {
            if let Err(source) = self.writer.write_sample(sample) {
                self.error = Some(RecordError::Wav { path: self.temp.clone(), source });
                return;
            }
        }
        self.written += pcm.len() as u64;
        if self.written >= self.header_at {
            self.header_at += u64::from(self.rate) * HEADER_EVERY_MS / 1000;
            if let Err(source) = self.writer.flush() {
                self.error = Some(RecordError::Wav { path: self.temp.clone(), source });
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
        if let Err(source) = self.writer.finalize() {
            remove_quietly(&temp);
            return Err(RecordError::Wav { path: temp, source });
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
        let n = (RATE * ms / 1000) as usize;
        (0..n).map(|i| (8000.0 * (std::f32::consts::TAU * hz * i as f32 / RATE as f32).sin()) as i16).collect()
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
}
