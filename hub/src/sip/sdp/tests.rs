use super::*;

const ALL: &[AudioCodec] = &[AudioCodec::Pcmu, AudioCodec::Pcma, AudioCodec::Opus];

fn local() -> LocalSession {
    LocalSession { id: 42, version: 1, rtp: "127.0.0.1:20000".parse().unwrap() }
}

fn offer(media: &str) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n{media}")
}

/// What Asterisk 22 offers from a PJSIP endpoint with `allow=ulaw,alaw` and RFC 4733 DTMF.
const ASTERISK: &str = "m=audio 10000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
                        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=maxptime:150\r\na=sendrecv\r\n";

#[test]
fn an_asterisk_offer_gets_pcmu_with_telephone_events() {
    let a = answer(offer(ASTERISK).as_bytes(), ALL, &local()).unwrap();
    assert_eq!(a.params.codec, AudioCodec::Pcmu);
    assert_eq!(a.params.payload_type, 0);
    assert_eq!(a.params.dtmf_payload_type, Some(101));
    assert_eq!(a.params.remote, Some("192.0.2.1:10000".parse().unwrap()));
    assert_eq!(a.params.ptime_ms, 20);
    assert_eq!(a.params.direction, Direction::SendRecv);
    for line in [
        "o=hub 42 1 IN IP4 127.0.0.1",
        "c=IN IP4 127.0.0.1",
        "m=audio 20000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=sendrecv",
    ] {
        assert!(a.sdp.contains(&format!("{line}\r\n")), "{line:?} missing:\n{}", a.sdp);
    }
}

#[test]
fn the_callers_order_decides() {
    let pcma_first = offer("m=audio 10000 RTP/AVP 8 0\r\n");
    let a = answer(pcma_first.as_bytes(), ALL, &local()).unwrap();
    assert_eq!((a.params.codec, a.params.payload_type, a.params.dtmf_payload_type), (AudioCodec::Pcma, 8, None));
    assert!(a.sdp.contains("m=audio 20000 RTP/AVP 8\r\n"), "{}", a.sdp);
    // What the app does not support is skipped, whatever its place.
    let a = answer(pcma_first.as_bytes(), &[AudioCodec::Pcmu], &local()).unwrap();
    assert_eq!(a.params.codec, AudioCodec::Pcmu);
}

#[test]
fn opus_takes_the_48k_telephone_event() {
    let o = offer(
        "m=audio 10000 RTP/AVP 111 0 110 101\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n\
         a=rtpmap:110 telephone-event/48000\r\na=rtpmap:101 telephone-event/8000\r\n",
    );
    let a = answer(o.as_bytes(), ALL, &local()).unwrap();
    assert_eq!((a.params.codec, a.params.payload_type, a.params.dtmf_payload_type), (AudioCodec::Opus, 111, Some(110)));
    assert!(a.sdp.contains("a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n"), "{}", a.sdp);
    let a = answer(o.as_bytes(), &[AudioCodec::Pcmu], &local()).unwrap();
    assert_eq!(a.params.dtmf_payload_type, Some(101), "8 kHz events with G.711");
}

#[test]
fn no_common_codec_or_no_plain_rtp_is_refused() {
    let g729 = offer("m=audio 10000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n");
    assert!(matches!(answer(g729.as_bytes(), ALL, &local()), Err(SdpError::NoCommonCodec(s)) if s.contains("G729")));
    let srtp = offer("m=audio 10000 UDP/TLS/RTP/SAVPF 0\r\n");
    assert!(matches!(answer(srtp.as_bytes(), ALL, &local()), Err(SdpError::NoCommonCodec(_))));
    let video_only = offer("m=video 10002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n");
    assert_eq!(answer(video_only.as_bytes(), ALL, &local()).unwrap_err(), SdpError::NoCommonCodec("no audio".into()));
}

#[test]
fn other_streams_are_declined_with_port_zero_in_their_place() {
    let o = offer("m=video 10002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\nm=audio 10000 RTP/AVP 0\r\n");
    let a = answer(o.as_bytes(), ALL, &local()).unwrap();
    let m: Vec<&str> = a.sdp.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(m, ["m=video 0 RTP/AVP 96", "m=audio 20000 RTP/AVP 0"]);
}

#[test]
fn hold_shows_as_a_direction_and_is_mirrored() {
    let sendonly = offer("m=audio 10000 RTP/AVP 0\r\na=sendonly\r\n");
    let a = answer(sendonly.as_bytes(), ALL, &local()).unwrap();
    assert_eq!(a.params.direction, Direction::RecvOnly);
    assert!(a.params.direction.is_hold() && a.sdp.contains("a=recvonly\r\n"));
    let inactive = offer("m=audio 10000 RTP/AVP 0\r\na=inactive\r\n");
    assert_eq!(answer(inactive.as_bytes(), ALL, &local()).unwrap().params.direction, Direction::Inactive);
    let zeros = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\n";
    let a = answer(zeros.as_bytes(), ALL, &local()).unwrap();
    assert_eq!((a.params.remote, a.params.direction), (None, Direction::Inactive));
    assert!(a.sdp.contains("a=inactive\r\n"));
}

#[test]
fn a_media_level_address_and_ptime_win() {
    let o = offer("m=audio 10000 RTP/AVP 8\r\nc=IN IP4 198.51.100.7\r\na=ptime:30\r\n");
    let a = answer(o.as_bytes(), ALL, &local()).unwrap();
    assert_eq!(a.params.remote, Some("198.51.100.7:10000".parse().unwrap()));
    assert_eq!(a.params.ptime_ms, 30);
    assert!(a.sdp.contains("a=ptime:30\r\n"));
}

#[test]
fn a_reanswer_carries_the_next_version() {
    let next = LocalSession { version: 2, ..local() };
    let a = answer(offer(ASTERISK).as_bytes(), ALL, &next).unwrap();
    assert!(a.sdp.contains("o=hub 42 2 IN IP4 127.0.0.1\r\n"), "{}", a.sdp);
}

#[test]
fn garbage_is_malformed_never_a_panic() {
    for body in [
        &b"hello"[..],
        b"v=0\r\n",
        b"\xff\xfe",
        b"v=0\r\no=- 1 1 IN IP4 x\r\ns=-\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\n",
    ] {
        assert!(
            matches!(answer(body, ALL, &local()), Err(SdpError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    let bad_port = offer("m=audio 99999 RTP/AVP 0\r\n");
    assert!(answer(bad_port.as_bytes(), ALL, &local()).is_err());
}

#[test]
fn the_hubs_offer_is_an_offer_it_can_answer_itself() {
    let o = super::offer(ALL, &local());
    for line in [
        "m=audio 20000 RTP/AVP 0 8 111 101",
        "a=rtpmap:111 opus/48000/2",
        "a=rtpmap:101 telephone-event/8000",
        "a=sendrecv",
    ] {
        assert!(o.contains(&format!("{line}\r\n")), "{line:?} missing:\n{o}");
    }
    let far = LocalSession { id: 7, version: 1, rtp: "127.0.0.1:30000".parse().unwrap() };
    let reply = answer(o.as_bytes(), &[AudioCodec::Pcma], &far).unwrap();
    let agreed = parse_answer(reply.sdp.as_bytes(), ALL, &local()).unwrap();
    assert_eq!((agreed.codec, agreed.payload_type, agreed.dtmf_payload_type), (AudioCodec::Pcma, 8, Some(101)));
    assert_eq!(agreed.remote, Some("127.0.0.1:30000".parse().unwrap()));
}
