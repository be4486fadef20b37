//! Sniffing and lengths on files built here the way browsers and tools write them; the
//! builders are shared with the mailbox tests.

use super::*;

/// A 16-bit mono PCM WAV of `ms` milliseconds at 8 kHz (silence).
pub(crate) fn wav(ms: u32) -> Vec<u8> {
    let data_len = ms * 16; // 8000 Hz × 2 bytes / 1000
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&8000u32.to_le_bytes());
    b.extend_from_slice(&16000u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    b.resize(b.len() + data_len as usize, 0);
    b
}

fn ogg_page(header_type: u8, granule: u64, serial: u32, seq: u32, packet: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"OggS");
    b.push(0);
    b.push(header_type);
    b.extend_from_slice(&granule.to_le_bytes());
    b.extend_from_slice(&serial.to_le_bytes());
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes()); // CRC: not checked when reading lengths
    let mut lacing = vec![255u8; packet.len() / 255];
    lacing.push((packet.len() % 255) as u8);
    b.push(lacing.len() as u8);
    b.extend_from_slice(&lacing);
    b.extend_from_slice(packet);
    b
}

/// An Ogg Opus stream as Firefox writes it: head, tags, then one 20 ms packet per page.
pub(crate) fn ogg_opus(ms: u64) -> Vec<u8> {
    let pre_skip: u16 = 312;
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(1);
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    let mut b = ogg_page(2, 0, 7, 0, &head);
    b.extend(ogg_page(0, 0, 7, 1, b"OpusTags\0\0\0\0\0\0\0\0"));
    let frames = ms / 20;
    for i in 1..=frames {
        let granule = u64::from(pre_skip) + i * 960;
        b.extend(ogg_page(if i == frames { 4 } else { 0 }, granule, 7, 1 + i as u32, &[0xFC, 0xFF, 0xFE]));
    }
    b
}

fn el(id: &[u8], body: &[u8]) -> Vec<u8> {
    let mut b = id.to_vec();
    b.push(0x01);
    b.extend_from_slice(&(body.len() as u64).to_be_bytes()[1..]);
    b.extend_from_slice(body);
    b
}

const UNKNOWN: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// A WebM as Chromium's `MediaRecorder` writes it: segment and clusters of unknown size, no
/// duration, one 20 ms Opus block after another, a new cluster every second.
pub(crate) fn webm(ms: u64) -> Vec<u8> {
    let mut b = el(&[0x1A, 0x45, 0xDF, 0xA3], &[el(&[0x42, 0x82], b"webm"), el(&[0x42, 0x87], &[4])].concat());
    b.extend_from_slice(&[0x18, 0x53, 0x80, 0x67]);
    b.extend_from_slice(&UNKNOWN);
    b.extend(el(
        &[0x15, 0x49, 0xA9, 0x66],
        &[el(&[0x2A, 0xD7, 0xB1], &[0x0F, 0x42, 0x40]), el(&[0x4D, 0x80], b"Chrome")].concat(),
    ));
    b.extend(el(&[0x16, 0x54, 0xAE, 0x6B], &el(&[0xAE], &[el(&[0xD7], &[1]), el(&[0x86], b"A_OPUS")].concat())));
    let mut t = 0u64;
    while t < ms {
        let cluster = t - t % 1000;
        if t.is_multiple_of(1000) {
            b.extend_from_slice(&[0x1F, 0x43, 0xB6, 0x75]);
            b.extend_from_slice(&UNKNOWN);
            b.extend(el(&[0xE7], &(cluster as u16).to_be_bytes()));
        }
        let rel = ((t - cluster) as i16).to_be_bytes();
        b.extend(el(&[0xA3], &[0x81, rel[0], rel[1], 0x80, 0xFC, 0xFF, 0xFE]));
        t += 20;
    }
    b
}

#[test]
fn containers_are_told_by_their_first_bytes() {
    assert_eq!(sniff(&wav(100)), Some(AudioKind::Wav));
    assert_eq!(sniff(&ogg_opus(100)), Some(AudioKind::Ogg));
    assert_eq!(sniff(&webm(100)), Some(AudioKind::Webm));
    assert_eq!(sniff(b"RIFF\0\0\0\0AVI LIST"), None, "RIFF but not WAVE");
    assert_eq!(sniff(b"ID3\x04\0\0\0\0"), None, "MP3");
    assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), None);
    assert_eq!(sniff(b""), None);
    assert_eq!(sniff(b"OggS"[..3].as_ref()), None);
}

#[test]
fn declared_types_name_a_container_or_something_else() {
    assert_eq!(AudioKind::declared("audio/webm;codecs=opus"), Some(Declared::Kind(AudioKind::Webm)));
    assert_eq!(AudioKind::declared("Audio/Ogg; codecs=opus"), Some(Declared::Kind(AudioKind::Ogg)));
    assert_eq!(AudioKind::declared("audio/x-wav"), Some(Declared::Kind(AudioKind::Wav)));
    assert_eq!(AudioKind::declared("application/octet-stream"), None);
    assert_eq!(AudioKind::declared(""), None);
    assert_eq!(AudioKind::declared("image/png"), Some(Declared::Other));
}

#[test]
fn wav_length_from_the_data_chunk() {
    assert_eq!(duration_ms(AudioKind::Wav, &wav(1500)), Ok(1500));
    let mut streamed = wav(700);
    streamed[40..44].copy_from_slice(&u32::MAX.to_le_bytes()); // size never filled in
    assert_eq!(duration_ms(AudioKind::Wav, &streamed), Ok(700));
    assert!(duration_ms(AudioKind::Wav, &wav(100)[..36]).is_err(), "no data chunk");
}

#[test]
fn ogg_opus_length_from_the_last_granule_less_the_pre_skip() {
    assert_eq!(duration_ms(AudioKind::Ogg, &ogg_opus(2000)), Ok(2000));
    let whole = ogg_opus(1000);
    let cut = &whole[..whole.len() - 5];
    assert_eq!(duration_ms(AudioKind::Ogg, cut), Ok(980), "a truncated last page is left out");
    let mut garbage = ogg_opus(1000);
    garbage.truncate(47 + 44 + 3 * 31); // head, tags, three audio pages
    garbage.extend_from_slice(&[0x55; 64]);
    assert!(duration_ms(AudioKind::Ogg, &garbage).is_err(), "pages must follow each other");
    let mut speex = ogg_opus(100);
    speex[28..36].copy_from_slice(b"Speex   ");
    assert!(duration_ms(AudioKind::Ogg, &speex).is_err());
}

#[test]
fn ogg_vorbis_from_a_real_file() {
    let file = include_bytes!("../../media/testdata/tone440_stereo_22k.ogg");
    assert_eq!(sniff(file), Some(AudioKind::Ogg));
    let ms = duration_ms(AudioKind::Ogg, file).unwrap();
    assert!((400..=5000).contains(&ms), "{ms}");
}

#[test]
fn webm_length_from_block_timestamps_with_unknown_sizes() {
    assert_eq!(duration_ms(AudioKind::Webm, &webm(3000)), Ok(3000));
    assert_eq!(duration_ms(AudioKind::Webm, &webm(40)), Ok(40));
    let header_only = &webm(100)[..40];
    assert!(duration_ms(AudioKind::Webm, header_only).is_err(), "no blocks");
    let mut mkv = webm(500);
    mkv[8..12].copy_from_slice(b"mp4 ");
    assert!(duration_ms(AudioKind::Webm, &mkv).is_err(), "doc type neither webm nor matroska");
}

#[test]
fn webm_declared_duration_counts_when_longer() {
    // Info with Duration = 5000.0 (float64) and a single block at 0.
    let mut b = el(&[0x1A, 0x45, 0xDF, 0xA3], &el(&[0x42, 0x82], b"matroska"));
    let info = el(&[0x15, 0x49, 0xA9, 0x66], &el(&[0x44, 0x89], &5000f64.to_be_bytes()));
    let cluster = el(&[0x1F, 0x43, 0xB6, 0x75], &[el(&[0xE7], &[0]), el(&[0xA3], &[0x81, 0, 0, 0x80, 1])].concat());
    b.extend(el(&[0x18, 0x53, 0x80, 0x67], &[info, cluster].concat()));
    assert_eq!(duration_ms(AudioKind::Webm, &b), Ok(5000));
}

#[test]
fn random_bytes_behind_a_magic_number_are_unreadable_not_a_panic() {
    let mut seed = 0x1234_5678u32;
    for kind in AudioKind::ALL {
        for len in [0usize, 1, 5, 13, 64, 999] {
            let mut b: Vec<u8> = match kind {
                AudioKind::Webm => vec![0x1A, 0x45, 0xDF, 0xA3],
                AudioKind::Ogg => b"OggS".to_vec(),
                AudioKind::Wav => b"RIFF\0\0\0\0WAVE".to_vec(),
            };
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                b.push((seed >> 16) as u8);
            }
            let _ = duration_ms(kind, &b);
        }
    }
}
