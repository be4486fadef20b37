//! What an uploaded recording is, told by its bytes (never by a name or a declared type), and
//! how long it plays, read from its container without decoding the audio.
//!
//! Browsers record WebM (Chromium's `MediaRecorder`) or Ogg (Firefox); desk tools produce WAV.
//! A browser's WebM is written live, so it carries no duration and its segment and clusters
//! have "unknown" sizes: the length comes from the last block's timestamp. Ogg carries it in
//! the granule position of its last page, WAV in the size of its `data` chunk.

/// A container the hub accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioKind {
    /// WebM / Matroska (EBML magic `1A 45 DF A3`).
    Webm,
    /// Ogg (`OggS`), with Opus or Vorbis inside.
    Ogg,
    /// RIFF WAVE.
    Wav,
}

impl AudioKind {
    /// The MIME type stored with the message and sent when it is played.
    pub fn media_type(self) -> &'static str {
        match self {
            AudioKind::Webm => "audio/webm",
            AudioKind::Ogg => "audio/ogg",
            AudioKind::Wav => "audio/wav",
        }
    }

    /// The file name extension the file is stored under.
    pub fn extension(self) -> &'static str {
        match self {
            AudioKind::Webm => "webm",
            AudioKind::Ogg => "ogg",
            AudioKind::Wav => "wav",
        }
    }

    /// The name people know it by, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            AudioKind::Webm => "WebM",
            AudioKind::Ogg => "Ogg",
            AudioKind::Wav => "WAV",
        }
    }

    /// Every kind, for looking up a stored file whose extension is not known.
    pub const ALL: [AudioKind; 3] = [AudioKind::Webm, AudioKind::Ogg, AudioKind::Wav];

    /// The kind a declared `Content-Type` names; `None` for a type that names none of them
    /// (absent, `application/octet-stream`), which leaves the decision to the content alone.
    pub fn declared(content_type: &str) -> Option<Declared> {
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "" | "application/octet-stream" => None,
            "audio/webm" | "video/webm" | "audio/x-matroska" | "video/x-matroska" => {
                Some(Declared::Kind(AudioKind::Webm))
            }
            "audio/ogg" | "audio/opus" | "application/ogg" | "video/ogg" => Some(Declared::Kind(AudioKind::Ogg)),
            "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => Some(Declared::Kind(AudioKind::Wav)),
            _ => Some(Declared::Other),
        }
    }
}

/// What a declared `Content-Type` says, when it says anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Declared {
    /// One of the accepted containers.
    Kind(AudioKind),
    /// Something else (`image/png`, `text/plain`…).
    Other,
}

/// Why a recording's length cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a readable {kind} recording: {reason}")]
pub struct Unreadable {
    /// The container it claimed to be by its first bytes.
    pub kind: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The container `bytes` start with, if it is one the hub accepts.
pub fn sniff(bytes: &[u8]) -> Option<AudioKind> {
    if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        Some(AudioKind::Webm)
    } else if bytes.starts_with(b"OggS") {
        Some(AudioKind::Ogg)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WAVE" {
        Some(AudioKind::Wav)
    } else {
        None
    }
}

/// How long the recording plays, in milliseconds.
pub fn duration_ms(kind: AudioKind, bytes: &[u8]) -> Result<u64, Unreadable> {
    match kind {
        AudioKind::Wav => wav_duration(bytes),
        AudioKind::Ogg => ogg_duration(bytes),
        AudioKind::Webm => webm_duration(bytes),
    }
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// `data` bytes over the `fmt ` chunk's average bytes per second.
fn wav_duration(b: &[u8]) -> Result<u64, Unreadable> {
    let bad = |reason| Unreadable { kind: "WAV", reason };
    if sniff(b) != Some(AudioKind::Wav) {
        return Err(bad("no RIFF WAVE header"));
    }
    let mut pos = 12usize;
    let mut byte_rate = None;
    while let (Some(id), Some(size)) = (b.get(pos..pos + 4), le_u32(b, pos + 4)) {
        let body = pos + 8;
        let size = size as usize;
        match id {
            b"fmt " => byte_rate = le_u32(b, body + 8).filter(|&r| r > 0),
            b"data" => {
                let rate = byte_rate.ok_or(bad("no format chunk before the audio"))?;
                // Streamed files leave the size at 0 or 0xFFFFFFFF: the rest of the file is audio.
                let left = b.len().saturating_sub(body);
                let len = if size == 0 || size == u32::MAX as usize { left } else { size.min(left) };
                return Ok(len as u64 * 1000 / u64::from(rate));
            }
            _ => {}
        }
        pos = body.saturating_add(size).saturating_add(size & 1);
    }
    Err(bad("no audio data"))
}

/// The last granule position of the first stream, less Opus's pre-skip, over the sample rate.
fn ogg_duration(b: &[u8]) -> Result<u64, Unreadable> {
    let bad = |reason| Unreadable { kind: "Ogg", reason };
    let mut pos = 0usize;
    let mut stream: Option<(u32, u64, u64)> = None; // serial, rate, pre-skip
    let mut last = None;
    while pos + 27 <= b.len() {
        if &b[pos..pos + 4] != b"OggS" || b[pos + 4] != 0 {
            return Err(bad("a page does not start where the previous one ends"));
        }
        let granule = u64::from_le_bytes(b[pos + 6..pos + 14].try_into().map_err(|_| bad("short page"))?);
        let serial = le_u32(b, pos + 14).ok_or(bad("short page"))?;
        let segments = usize::from(b[pos + 26]);
        let Some(table) = b.get(pos + 27..pos + 27 + segments) else { break };
        let body = pos + 27 + segments;
        let end = body + table.iter().map(|&l| usize::from(l)).sum::<usize>();
        match stream {
            None => {
                let head = b.get(body..end.min(b.len())).unwrap_or_default();
                stream = Some(if head.starts_with(b"OpusHead") {
                    (serial, 48_000, u64::from(le_u16(head, 10).ok_or(bad("short Opus header"))?))
                } else if head.starts_with(b"\x01vorbis") {
                    let rate = le_u32(head, 12).filter(|&r| r > 0).ok_or(bad("short Vorbis header"))?;
                    (serial, u64::from(rate), 0)
                } else {
                    return Err(bad("neither Opus nor Vorbis inside"));
                });
            }
            // -1: no packet ends on this page.
            Some((s, _, _)) if s == serial && granule != u64::MAX => last = Some(granule),
            Some(_) => {}
        }
        if end > b.len() {
            break; // a truncated last page: what came before still counts
        }
        pos = end;
    }
    let (_, rate, pre_skip) = stream.ok_or(bad("no pages"))?;
    let last = last.ok_or(bad("no audio pages"))?;
    Ok(last.saturating_sub(pre_skip).saturating_mul(1000) / rate)
}

const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const CLUSTER: u32 = 0x1F43_B675;
const CLUSTER_TIMECODE: u32 = 0xE7;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const SIMPLE_BLOCK: u32 = 0xA3;

/// An EBML element id (marker bits kept, as ids are written in the spec) and its length.
fn ebml_id(b: &[u8], pos: usize) -> Option<(u32, usize)> {
    let first = *b.get(pos)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return None;
    }
    let bytes = b.get(pos..pos + len)?;
    Some((bytes.iter().fold(0u32, |acc, &x| acc << 8 | u32::from(x)), len))
}

/// An EBML variable-length integer (marker bit removed) and its length; `None` as the value
/// when every value bit is set, which means "unknown size" for an element.
fn ebml_vint(b: &[u8], pos: usize) -> Option<(Option<u64>, usize)> {
    let first = *b.get(pos)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = b.get(pos..pos + len)?;
    let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let value = bytes[1..].iter().fold(u64::from(first & mask), |acc, &x| acc << 8 | u64::from(x));
    let all_ones = (1u64 << (7 * len)) - 1;
    Some((if value == all_ones { None } else { Some(value) }, len))
}

fn ebml_uint(b: &[u8]) -> u64 {
    b.iter().take(8).fold(0u64, |acc, &x| acc << 8 | u64::from(x))
}

/// Walks the elements in file order, entering the segment, its info and every cluster, and
/// keeps the earliest and latest block timestamps. The length is their distance plus one
/// frame (the last gap between blocks), or the segment's declared duration when longer.
fn webm_duration(b: &[u8]) -> Result<u64, Unreadable> {
    let bad = |reason| Unreadable { kind: "WebM", reason };
    let (id, id_len) = ebml_id(b, 0).ok_or(bad("no EBML header"))?;
    let (Some(header_size), size_len) = ebml_vint(b, id_len).ok_or(bad("no EBML header"))? else {
        return Err(bad("no EBML header"));
    };
    if id != EBML {
        return Err(bad("no EBML header"));
    }
    let header_start = id_len + size_len;
    let header_end = usize::try_from(header_size).ok().and_then(|s| header_start.checked_add(s));
    let header = header_end.and_then(|end| b.get(header_start..end)).ok_or(bad("short EBML header"))?;
    let mut pos = 0;
    let mut doc_type = None;
    while let Some((id, il)) = ebml_id(header, pos) {
        let Some((Some(size), sl)) = ebml_vint(header, pos + il) else { break };
        let body = pos + il + sl;
        let Some(value) = usize::try_from(size).ok().and_then(|s| header.get(body..body.checked_add(s)?)) else {
            break;
        };
        if id == DOC_TYPE {
            doc_type = Some(value);
        }
        pos = body + value.len();
    }
    if !matches!(doc_type, Some(b"webm" | b"matroska")) {
        return Err(bad("neither WebM nor Matroska"));
    }

    let mut pos = header_end.unwrap_or(b.len());
    let mut scale_ns: u64 = 1_000_000;
    let mut declared: Option<f64> = None;
    let mut cluster: u64 = 0;
    let mut first: Option<i64> = None;
    let mut last: Option<i64> = None;
    let mut gap: i64 = 0;
    while pos < b.len() {
        let Some((id, il)) = ebml_id(b, pos) else { break };
        let Some((size, sl)) = ebml_vint(b, pos + il) else { break };
        let body = pos + il + sl;
        if matches!(id, SEGMENT | INFO | CLUSTER | BLOCK_GROUP) {
            pos = body; // enter: its children follow (its size may be unknown)
            continue;
        }
        let size = usize::try_from(size.ok_or(bad("an element of unknown size"))?).map_err(|_| bad("huge element"))?;
        let value = b.get(body..body.saturating_add(size).min(b.len())).unwrap_or_default();
        match id {
            TIMECODE_SCALE => scale_ns = ebml_uint(value).max(1),
            DURATION => {
                declared = match value.len() {
                    4 => value.try_into().ok().map(|x| f64::from(f32::from_be_bytes(x))),
                    8 => value.try_into().ok().map(f64::from_be_bytes),
                    _ => None,
                }
            }
            CLUSTER_TIMECODE => cluster = ebml_uint(value),
            SIMPLE_BLOCK | BLOCK => {
                // Track number (a vint), then a signed 16-bit timestamp relative to the cluster.
                let (_, track_len) = ebml_vint(value, 0).ok_or(bad("short block"))?;
                let rel = value.get(track_len..track_len + 2).ok_or(bad("short block"))?;
                let at = i64::try_from(cluster)
                    .unwrap_or(i64::MAX)
                    .saturating_add(i64::from(i16::from_be_bytes([rel[0], rel[1]])));
                if let Some(prev) = last
                    && at > prev
                {
                    gap = at - prev;
                }
                first = Some(first.map_or(at, |f| f.min(at)));
                last = Some(last.map_or(at, |l| l.max(at)));
            }
            _ => {}
        }
        pos = body.saturating_add(size);
    }
    let ticks_ms = |ticks: f64| ticks * scale_ns as f64 / 1_000_000.0;
    let from_blocks = match (first, last) {
        (Some(f), Some(l)) => Some(ticks_ms((l - f + gap) as f64)),
        _ => None,
    };
    let from_info = declared.filter(|d| d.is_finite() && *d > 0.0).map(ticks_ms);
    match (from_blocks, from_info) {
        (None, None) => Err(bad("no audio blocks")),
        (a, b) => Ok(a.unwrap_or(0.0).max(b.unwrap_or(0.0)).round() as u64),
    }
}

#[cfg(test)]
pub(crate) mod tests;
