//! Audio codecs: G.711 µ-law/A-law (`audio-codec`) and Opus (`opus`, libopus), behind one
//! encoder and one decoder type so the rest of the engine never matches on the codec.
//!
//! Samples are signed 16-bit mono PCM. G.711 runs at 8 kHz. Opus runs at 48 kHz on the wire
//! (RFC 7587: the RTP clock is always 48 kHz) but libopus decodes straight to 8, 12, 16, 24 or
//! 48 kHz, so a decoder is made at the rate its consumer wants and no resampler is needed on the
//! receive path. The hub sends Opus mono (RFC 7587 §3.4 lets a receiver that signalled stereo
//! take mono) and decodes any stream to mono.

use crate::sip::sdp::AudioCodec;

/// The largest Opus packet the hub produces (RFC 6716 caps a frame at 1275 bytes).
const OPUS_MAX_PACKET: usize = 1275;

/// Opus bitrate for speech: 32 kbit/s is transparent for voice prompts.
const OPUS_BITRATE: i32 = 32_000;

/// Why a codec could not be made or could not code a frame.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// libopus refused (a bad rate, a corrupt packet).
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// G.711 coding failed (a buffer too small: a bug).
    #[error("G.711: {0:?}")]
    G711(audio_codec::CodecError),
    /// The decoder cannot run at this output rate.
    #[error("{codec} cannot decode at {rate} Hz")]
    Rate {
        /// The codec.
        codec: &'static str,
        /// The rate asked for.
        rate: u32,
    },
}

/// The rate at which a codec's encoder takes samples (and its decoder gives them by default).
pub fn pcm_rate(codec: AudioCodec) -> u32 {
    match codec {
        AudioCodec::Pcmu | AudioCodec::Pcma => 8000,
        AudioCodec::Opus => 48_000,
    }
}

/// Samples in one frame of `ptime_ms` at `rate`.
pub fn frame_samples(rate: u32, ptime_ms: u32) -> usize {
    (rate as usize * ptime_ms as usize) / 1000
}

/// Turns PCM frames into codec payloads.
pub enum Encoder {
    /// G.711, stateless.
    G711(Box<dyn audio_codec::Encoder>),
    /// Opus, stateful: frames must be fed in order.
    Opus(Box<opus::Encoder>),
}

impl Encoder {
    /// An encoder for `codec`, taking samples at [`pcm_rate`].
    pub fn new(codec: AudioCodec) -> Result<Self, CodecError> {
        Ok(match codec {
            AudioCodec::Pcmu => Self::G711(audio_codec::create_encoder(audio_codec::CodecType::PCMU)),
            AudioCodec::Pcma => Self::G711(audio_codec::create_encoder(audio_codec::CodecType::PCMA)),
            AudioCodec::Opus => {
                let mut enc = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)?;
                enc.set_bitrate(opus::Bitrate::Bits(OPUS_BITRATE))?;
                Self::Opus(Box::new(enc))
            }
        })
    }

    /// Encodes one frame (`frame_samples(pcm_rate, ptime)` samples), appending to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let start = out.len();
        match self {
            Self::G711(enc) => {
                out.resize(start + enc.max_encode_bytes(pcm.len()), 0);
                let n = enc.encode_into(pcm, &mut out[start..]).map_err(CodecError::G711)?;
                out.truncate(start + n);
            }
            Self::Opus(enc) => {
                out.resize(start + OPUS_MAX_PACKET, 0);
                let n = enc.encode(pcm, &mut out[start..])?;
                out.truncate(start + n);
            }
        }
        Ok(())
    }
}

/// Turns codec payloads into PCM at a chosen rate.
pub enum Decoder {
    /// G.711 at 8 kHz.
    G711(Box<dyn audio_codec::Decoder>),
    /// Opus at the rate it was made for.
    Opus {
        /// libopus' decoder.
        dec: Box<opus::Decoder>,
        /// Its output rate.
        rate: u32,
    },
}

impl Decoder {
    /// A decoder for `codec` giving samples at `rate`: 8000 for G.711, and one of 8, 12, 16,
    /// 24 or 48 kHz for Opus.
    pub fn new(codec: AudioCodec, rate: u32) -> Result<Self, CodecError> {
        match codec {
            AudioCodec::Pcmu | AudioCodec::Pcma if rate != 8000 => Err(CodecError::Rate { codec: codec.name(), rate }),
            AudioCodec::Pcmu => Ok(Self::G711(audio_codec::create_decoder(audio_codec::CodecType::PCMU))),
            AudioCodec::Pcma => Ok(Self::G711(audio_codec::create_decoder(audio_codec::CodecType::PCMA))),
            AudioCodec::Opus => {
                if ![8000, 12_000, 16_000, 24_000, 48_000].contains(&rate) {
                    return Err(CodecError::Rate { codec: codec.name(), rate });
                }
                Ok(Self::Opus { dec: Box::new(opus::Decoder::new(rate, opus::Channels::Mono)?), rate })
            }
        }
    }

    /// The output rate.
    pub fn rate(&self) -> u32 {
        match self {
            Self::G711(_) => 8000,
            Self::Opus { rate, .. } => *rate,
        }
    }

    /// Decodes one payload, appending its samples to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let start = out.len();
        match self {
            Self::G711(dec) => {
                out.resize(start + dec.max_decode_samples(payload.len()), 0);
                let n = dec.decode_into(payload, &mut out[start..]).map_err(CodecError::G711)?;
                out.truncate(start + n);
            }
            Self::Opus { dec, rate } => {
                // 120 ms is the longest Opus packet.
                out.resize(start + *rate as usize * 120 / 1000, 0);
                let n = dec.decode(payload, &mut out[start..], false)?;
                out.truncate(start + n);
            }
        }
        Ok(())
    }

    /// Fills one lost frame of `samples` (Opus conceals; G.711 gives silence).
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), CodecError> {
        let start = out.len();
        out.resize(start + samples, 0);
        if let Self::Opus { dec, .. } = self {
            let n = dec.decode(&[], &mut out[start..], false)?;
            out.truncate(start + n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, n: usize) -> Vec<i16> {
        (0..n).map(|i| (8000.0 * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin()) as i16).collect()
    }

    fn energy(pcm: &[i16]) -> f64 {
        pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / pcm.len() as f64
    }

    #[test]
    fn g711_round_trips_a_tone_within_companding_error() {
        for codec in [AudioCodec::Pcmu, AudioCodec::Pcma] {
            let pcm = tone(8000, 1000.0, 160);
            let mut enc = Encoder::new(codec).unwrap();
            let mut payload = Vec::new();
            enc.encode(&pcm, &mut payload).unwrap();
            assert_eq!(payload.len(), 160, "one byte per sample");
            let mut dec = Decoder::new(codec, 8000).unwrap();
            let mut back = Vec::new();
            dec.decode(&payload, &mut back).unwrap();
            assert_eq!(back.len(), 160);
            for (a, b) in pcm.iter().zip(&back) {
                assert!((i32::from(*a) - i32::from(*b)).abs() < 300, "{codec:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn opus_encodes_at_48k_and_decodes_at_the_rate_asked_for() {
        let mut enc = Encoder::new(AudioCodec::Opus).unwrap();
        let mut dec = Decoder::new(AudioCodec::Opus, 8000).unwrap();
        let pcm = tone(48_000, 800.0, 48_000);
        let mut back = Vec::new();
        for frame in pcm.chunks(frame_samples(48_000, 20)) {
            let mut payload = Vec::new();
            enc.encode(frame, &mut payload).unwrap();
            assert!(!payload.is_empty() && payload.len() < 400, "{}", payload.len());
            dec.decode(&payload, &mut back).unwrap();
        }
        assert_eq!(back.len(), 8000, "one second at 8 kHz");
        assert!(energy(&back[4000..]) > energy(&pcm) / 4.0, "the tone survives");
    }

    #[test]
    fn a_rate_the_codec_cannot_give_is_refused() {
        assert!(matches!(Decoder::new(AudioCodec::Pcmu, 16_000), Err(CodecError::Rate { .. })));
        assert!(matches!(Decoder::new(AudioCodec::Opus, 44_100), Err(CodecError::Rate { .. })));
    }

    #[test]
    fn a_corrupt_opus_packet_is_an_error_not_a_panic() {
        let mut dec = Decoder::new(AudioCodec::Opus, 48_000).unwrap();
        let mut out = Vec::new();
        // TOC code 3 (arbitrary frame count) with a frame count of 0 is invalid.
        assert!(dec.decode(&[0x03, 0x00], &mut out).is_err());
    }
}
