//! The sans-IO client against the sans-IO server, in memory, with bytes cut into random
//! pieces both ways; and the tokio `Client` against a tiny tokio server built on
//! `ServerSession`.

use amf::Amf0Value;
use bytes::{Bytes, BytesMut};
use rtmp::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits, MessageHeader};
use rtmp::client::{ClientConfig, ClientEvent, ClientSession, MediaKind, MediaMessage};
use rtmp::handshake::{ClientHandshake, ServerHandshake};
use rtmp::message::{Message, UserControl};
use rtmp::server::{Event, ServerConfig, ServerSession};

/// xorshift: deterministic piece sizes without a rand dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Decodes the client's byte stream on the side, to see what it sent (acks, pongs).
struct Sniffer {
    decoder: ChunkDecoder,
    buf: BytesMut,
    messages: Vec<Message>,
}

impl Sniffer {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        while let Some(raw) = self.decoder.decode(&mut self.buf).unwrap() {
            let msg = Message::decode(raw.header.type_id, raw.payload).unwrap();
            if let Message::SetChunkSize(n) = msg {
                self.decoder.set_chunk_size(n).unwrap();
            }
            self.messages.push(msg);
        }
    }
}

#[derive(Clone)]
enum Answer {
    Accept,
    Reject(&'static str, &'static str),
}

struct Pair {
    client: ClientSession,
    server: ServerSession,
    rng: Rng,
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    server_in: BytesMut,
    client_in: BytesMut,
    sniffer: Sniffer,
    server_events: Vec<Event>,
    client_events: Vec<ClientEvent>,
    connect: Answer,
    publish: Answer,
    /// Answer plays with SRS's RTMP 302 to this URL instead of starting them.
    redirect_play: Option<&'static str>,
}

impl Pair {
    fn new(seed: u64, client_config: ClientConfig, server_config: ServerConfig) -> Pair {
        let mut pair = Pair {
            client: ClientSession::new(client_config),
            server: ServerSession::new(server_config),
            rng: Rng(seed | 1),
            to_server: Vec::new(),
            to_client: Vec::new(),
            server_in: BytesMut::new(),
            client_in: BytesMut::new(),
            sniffer: Sniffer {
                decoder: ChunkDecoder::new(DecoderLimits::default()),
                buf: BytesMut::new(),
                messages: Vec::new(),
            },
            server_events: Vec::new(),
            client_events: Vec::new(),
            connect: Answer::Accept,
            publish: Answer::Accept,
            redirect_play: None,
        };
        pair.handshake();
        pair
    }

    fn default_pair(seed: u64) -> Pair {
        Pair::new(
            seed,
            ClientConfig::new("live", "rtmp://127.0.0.1/live"),
            ServerConfig::default(),
        )
    }

    /// Random piece size, sometimes a single byte, sometimes several chunks' worth.
    fn piece(&mut self, available: usize) -> usize {
        let max = match self.rng.below(4) {
            0 => 1,
            1 => 17,
            2 => 300,
            _ => 70_000,
        };
        (1 + self.rng.below(max)).min(available)
    }

    fn handshake(&mut self) {
        let mut ch = ClientHandshake::new(true, 7, 0);
        let mut sh = ServerHandshake::new(9, 0);
        let (mut c_out, mut s_out) = (Vec::new(), Vec::new());
        ch.start(&mut c_out);
        let (mut c_in, mut s_in) = (BytesMut::new(), BytesMut::new());
        let (mut c_done, mut s_done) = (false, false);
        let mut c_wire: Vec<u8> = Vec::new();
        let mut s_wire: Vec<u8> = Vec::new();
        for _ in 0..100_000 {
            c_wire.append(&mut c_out);
            s_wire.append(&mut s_out);
            if c_done && s_done && c_wire.is_empty() && s_wire.is_empty() {
                break;
            }
            if !c_wire.is_empty() {
                let n = self.piece(c_wire.len());
                s_in.extend_from_slice(&c_wire.drain(..n).collect::<Vec<_>>());
                s_done = sh.process(&mut s_in, &mut s_out).unwrap();
            }
            if !s_wire.is_empty() {
                let n = self.piece(s_wire.len());
                c_in.extend_from_slice(&s_wire.drain(..n).collect::<Vec<_>>());
                c_done = ch.process(&mut c_in, &mut c_out).unwrap();
            }
        }
        assert!(c_done && s_done, "handshake did not finish");
        assert!(c_in.is_empty() && s_in.is_empty());
    }

    fn send_to_server(&mut self, bytes: &[u8]) {
        self.sniffer.push(bytes);
        self.to_server.extend_from_slice(bytes);
    }

    fn collect_output(&mut self) {
        if let Some(b) = self.client.take_output() {
            self.send_to_server(&b);
        }
        if let Some(b) = self.server.take_output() {
            self.to_client.extend_from_slice(&b);
        }
    }

    fn on_server_event(&mut self, ev: &Event) {
        match ev {
            Event::Connect(_) => match self.connect.clone() {
                Answer::Accept => self.server.accept_connect(),
                Answer::Reject(_, d) => self.server.reject_connect(d),
            },
            Event::Publish { stream_id, .. } => match self.publish.clone() {
                Answer::Accept => self.server.accept_publish(*stream_id),
                Answer::Reject(c, d) => self.server.reject_publish(*stream_id, c, d),
            },
            Event::Play {
                stream_id,
                name,
                reset,
                ..
            } => match self.redirect_play {
                Some(url) => self.server.redirect(url),
                None => self.server.accept_play(*stream_id, name, *reset),
            },
            _ => {}
        }
    }

    /// Moves bytes both ways in random pieces until both sides are idle.
    fn pump(&mut self) {
        loop {
            self.collect_output();
            if self.to_server.is_empty() && self.to_client.is_empty() {
                return;
            }
            if !self.to_server.is_empty() {
                let n = self.piece(self.to_server.len());
                let piece: Vec<u8> = self.to_server.drain(..n).collect();
                self.server_in.extend_from_slice(&piece);
                while let Some(ev) = self.server.feed(&mut self.server_in).unwrap() {
                    self.on_server_event(&ev);
                    self.server_events.push(ev);
                }
            }
            if !self.to_client.is_empty() {
                let n = self.piece(self.to_client.len());
                let piece: Vec<u8> = self.to_client.drain(..n).collect();
                self.client_in.extend_from_slice(&piece);
                while let Some(ev) = self.client.feed(&mut self.client_in).unwrap() {
                    self.client_events.push(ev);
                }
            }
        }
    }

    fn connect(&mut self) {
        self.client.connect().unwrap();
        self.pump();
    }

    fn client_media(&mut self, frames: &[(MediaKind, u32, Bytes)]) {
        for (kind, ts, payload) in frames {
            let mut out = Vec::new();
            self.client.encode_media(*kind, *ts, payload, &mut out);
            for b in out {
                self.send_to_server(&b);
            }
        }
        self.pump();
    }

    fn server_media(&mut self, stream_id: u32, frames: &[(MediaKind, u32, Bytes)]) {
        self.collect_output();
        for (kind, ts, payload) in frames {
            let mut out = Vec::new();
            self.server
                .encode_media(*kind, stream_id, *ts, payload, &mut out);
            for b in out {
                self.to_client.extend_from_slice(&b);
            }
        }
        self.pump();
    }

    fn server_media_events(&self) -> Vec<(MediaKind, u32, Bytes)> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                Event::Media {
                    kind,
                    timestamp,
                    payload,
                    ..
                } => Some((*kind, *timestamp, payload.clone())),
                _ => None,
            })
            .collect()
    }

    fn client_media_events(&self) -> Vec<(MediaKind, u32, Bytes)> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Media(MediaMessage {
                    kind,
                    timestamp,
                    payload,
                }) => Some((*kind, *timestamp, payload.clone())),
                _ => None,
            })
            .collect()
    }
}

fn bytes_of(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<_>>(),
    )
}

fn metadata() -> Bytes {
    let mut b = Vec::new();
    Amf0Value::string("onMetaData").encode(&mut b);
    Amf0Value::EcmaArray(vec![
        ("width".into(), Amf0Value::Number(640.0)),
        ("height".into(), Amf0Value::Number(360.0)),
    ])
    .encode(&mut b);
    Bytes::from(b)
}

/// Audio, video (one bigger than the 60000-byte chunk size) and metadata, with timestamps
/// that need the extended field.
fn frames() -> Vec<(MediaKind, u32, Bytes)> {
    vec![
        (MediaKind::Metadata, 0, metadata()),
        (MediaKind::Video, 0, bytes_of(5_000, 1)),
        (MediaKind::Audio, 0, bytes_of(300, 2)),
        (MediaKind::Video, 40, bytes_of(100_000, 3)),
        (MediaKind::Audio, 0x00FF_FFFE, bytes_of(10, 4)),
        (MediaKind::Video, 0x00FF_FFFF, bytes_of(129, 5)),
        (MediaKind::Audio, 0x0100_0000, bytes_of(1, 6)),
        (MediaKind::Video, 0x1234_5678, bytes_of(70_000, 7)),
        (MediaKind::Audio, 0x7FFF_FFFF, bytes_of(0, 8)),
    ]
}

#[test]
fn connect_accepted() {
    for seed in 1..20 {
        let mut p = Pair::default_pair(seed);
        p.connect();
        let Some(Event::Connect(info)) = p.server_events.first() else {
            panic!("no connect event: {:?}", p.server_events);
        };
        assert_eq!(info.app, "live");
        assert_eq!(info.tc_url, "rtmp://127.0.0.1/live");
        assert_eq!(info.flash_ver, "FMLE/3.0 (compatible; sluice)");
        assert_eq!(info.object_encoding, 0.0);
        assert!(matches!(
            p.client_events.as_slice(),
            [ClientEvent::Connected { info }] if info.get("code").and_then(|c| c.as_str()) == Some("NetConnection.Connect.Success")
        ));
        assert!(p.client.is_connected());
        // The server's Set Chunk Size applied to the client's decoder.
        assert_eq!(p.client.chunk_size_in(), 60_000);
    }
}

#[test]
fn connect_rejected() {
    let mut p = Pair::default_pair(3);
    p.connect = Answer::Reject("", "go away");
    p.connect();
    match p.client_events.as_slice() {
        [ClientEvent::Error { command, status }] => {
            assert_eq!(command, "connect");
            assert_eq!(status.level, "error");
            assert_eq!(status.code, "NetConnection.Connect.Rejected");
            assert_eq!(status.description, "go away");
        }
        other => panic!("{other:?}"),
    }
    assert!(!p.client.is_connected());
    assert!(p.client.publish("x").is_err());
}

#[test]
fn publish_and_media_arrive_intact() {
    for seed in 1..10 {
        let mut p = Pair::default_pair(seed * 77);
        p.connect();
        p.client.publish("test?token=1").unwrap();
        p.pump();
        assert!(p.server_events.iter().any(|e| matches!(
            e,
            Event::Publish { stream_id: 1, name, kind } if name == "test?token=1" && kind == "live"
        )));
        assert!(p
            .client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Published { stream_id: 1 })));
        assert_eq!(p.client.chunk_size_out(), 60_000);
        assert!(p.sniffer.messages.contains(&Message::SetChunkSize(60_000)));

        p.client_media(&frames());
        assert_eq!(p.server_media_events(), frames());

        p.client.close().unwrap();
        p.pump();
        assert!(p
            .server_events
            .iter()
            .any(|e| matches!(e, Event::CloseStream { stream_id: 1 })));
    }
}

#[test]
fn publish_rejected_is_an_error_event() {
    let mut p = Pair::default_pair(5);
    p.publish = Answer::Reject("NetStream.Publish.BadName", "Stream already publishing");
    p.connect();
    p.client.publish("busy").unwrap();
    p.pump();
    let err = p.client_events.iter().find_map(|e| match e {
        ClientEvent::Error { command, status } => Some((command.clone(), status.clone())),
        _ => None,
    });
    let (command, status) = err.expect("no error event");
    assert_eq!(command, "publish");
    assert_eq!(status.code, "NetStream.Publish.BadName");
    assert_eq!(status.description, "Stream already publishing");
    assert!(!p
        .client_events
        .iter()
        .any(|e| matches!(e, ClientEvent::Published { .. })));
}

#[test]
fn play_receives_server_media() {
    for seed in 1..10 {
        let mut p = Pair::default_pair(seed * 13);
        p.connect();
        p.client.play("cam").unwrap();
        p.pump();
        assert!(p.server_events.iter().any(|e| matches!(
            e,
            Event::Play { stream_id: 1, name, start, duration, .. } if name == "cam" && *start == -2.0 && *duration == -1.0
        )));
        assert!(p.server_events.iter().any(|e| matches!(
            e,
            Event::SetBufferLength {
                stream_id: 1,
                buffer_ms: 3000
            }
        )));
        assert!(p
            .client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Playing { stream_id: 1 })));

        p.server_media(1, &frames());
        assert_eq!(p.client_media_events(), frames());

        p.server
            .status(1, "status", "NetStream.Play.UnpublishNotify", "gone");
        p.pump();
        match p.client_events.last() {
            Some(ClientEvent::Status(s)) => assert!(s.ends_playback()),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn chunk_sizes_change_both_ways() {
    let server_config = ServerConfig {
        chunk_size: 777,
        ..ServerConfig::default()
    };
    let mut client_config = ClientConfig::new("live", "rtmp://h/live");
    client_config.chunk_size = 1_000;
    let mut p = Pair::new(11, client_config, server_config);
    p.connect();
    assert_eq!(p.client.chunk_size_in(), 777);
    p.client.publish("s").unwrap();
    p.pump();
    assert_eq!(p.client.chunk_size_out(), 1_000);
    assert!(p.sniffer.messages.contains(&Message::SetChunkSize(1_000)));
    p.client_media(&frames());
    assert_eq!(p.server_media_events(), frames());
    p.server_media(1, &frames());
    assert_eq!(p.client_media_events(), frames());
}

#[test]
fn ping_request_is_answered() {
    let mut p = Pair::default_pair(21);
    p.connect();
    p.collect_output();
    let ping = Message::UserControl(UserControl::PingRequest(0xDEAD_BEEF));
    let payload = ping.encode_payload();
    let header = MessageHeader {
        timestamp: 0,
        length: payload.len() as u32,
        type_id: ping.type_id(),
        stream_id: 0,
    };
    let mut wire = Vec::new();
    ChunkEncoder::new().encode_into(2, &header, &payload, &mut wire);
    p.to_client.extend_from_slice(&wire);
    p.pump();
    assert!(p
        .sniffer
        .messages
        .contains(&Message::UserControl(UserControl::PingResponse(
            0xDEAD_BEEF
        ))));
}

#[test]
fn acknowledgements_follow_the_window() {
    let server_config = ServerConfig {
        window_ack_size: 10_000,
        ..ServerConfig::default()
    };
    let mut p = Pair::new(
        31,
        ClientConfig::new("live", "rtmp://h/live"),
        server_config,
    );
    p.connect();
    p.client.play("s").unwrap();
    p.pump();
    assert_eq!(p.client.acks_sent(), 0);
    p.server_media(1, &frames());
    let acks: Vec<u32> = p
        .sniffer
        .messages
        .iter()
        .filter_map(|m| match m {
            Message::Acknowledgement { sequence } => Some(*sequence),
            _ => None,
        })
        .collect();
    // ~250 KB received with a 10 KB window; like SRS, the count is checked after each whole
    // message, so one big video frame may stretch a window.
    assert!(acks.len() >= 3, "{acks:?}");
    assert_eq!(acks.len() as u64, p.client.acks_sent());
    assert!(acks.windows(2).all(|w| w[1] >= w[0] + 10_000), "{acks:?}");
    let last = u64::from(*acks.last().unwrap());
    assert!(last <= p.client.bytes_in());
    assert!(p.client.bytes_in() - last < 10_000 + 100_100);
}

#[test]
fn hostile_server_bytes_never_panic() {
    let mut rng = Rng(0x5EED);
    for _ in 0..300 {
        let mut s = ClientSession::new(ClientConfig::new("live", "rtmp://h/live"));
        s.connect().unwrap();
        let len = rng.below(400);
        let junk: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        let mut buf = BytesMut::from(&junk[..]);
        for _ in 0..1_000 {
            match s.feed(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
    }
}

mod tokio_client {
    use std::sync::{Arc, Mutex};

    use super::*;
    use rtmp::client::{Client, ClientError};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    type Recorded = Arc<Mutex<Vec<Event>>>;

    async fn write(sock: &mut TcpStream, s: &mut ServerSession) {
        if let Some(b) = s.take_output() {
            sock.write_all(&b).await.unwrap();
        }
    }

    /// One connection: accepts everything except publishing "bad"; a player gets `frames()`
    /// and then UnpublishNotify.
    async fn serve(mut sock: TcpStream, recorded: Recorded) {
        let mut buf = BytesMut::new();
        let mut hs = ServerHandshake::new(5, 0);
        let mut out = Vec::new();
        loop {
            let done = hs.process(&mut buf, &mut out).unwrap();
            sock.write_all(&out).await.unwrap();
            out.clear();
            if done {
                break;
            }
            if sock.read_buf(&mut buf).await.unwrap() == 0 {
                return;
            }
        }
        let mut s = ServerSession::new(ServerConfig::default());
        loop {
            while let Some(ev) = s.feed(&mut buf).unwrap() {
                match &ev {
                    Event::Connect(_) => s.accept_connect(),
                    Event::Publish {
                        stream_id, name, ..
                    } => {
                        if name == "bad" {
                            s.reject_publish(
                                *stream_id,
                                "NetStream.Publish.BadName",
                                "Stream bad is busy",
                            );
                        } else {
                            s.accept_publish(*stream_id);
                        }
                    }
                    Event::Play {
                        stream_id, name, ..
                    } => {
                        s.accept_play(*stream_id, name, true);
                        write(&mut sock, &mut s).await;
                        let mut out = Vec::new();
                        for (kind, ts, payload) in frames() {
                            s.encode_media(kind, *stream_id, ts, &payload, &mut out);
                        }
                        for b in out {
                            sock.write_all(&b).await.unwrap();
                        }
                        s.status(
                            *stream_id,
                            "status",
                            "NetStream.Play.UnpublishNotify",
                            "done",
                        );
                    }
                    _ => {}
                }
                recorded.lock().unwrap().push(ev);
            }
            write(&mut sock, &mut s).await;
            match sock.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    async fn start() -> (String, tokio::task::JoinHandle<Vec<Event>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let recorded: Recorded = Arc::default();
            serve(sock, recorded.clone()).await;
            let events = recorded.lock().unwrap().clone();
            events
        });
        (format!("rtmp://127.0.0.1:{port}/live"), handle)
    }

    #[tokio::test]
    async fn publish_over_tcp() {
        let (base, server) = start().await;
        let client = Client::connect(&format!("{base}/test")).await.unwrap();
        assert_eq!(client.url().stream, "test");
        let mut publisher = client.publish().await.unwrap();
        for (kind, ts, payload) in frames() {
            publisher.send(kind, ts, payload).await.unwrap();
        }
        publisher.flush().await.unwrap();
        publisher.close().await.unwrap();
        let events = server.await.unwrap();
        let media: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Media {
                    kind,
                    timestamp,
                    payload,
                    ..
                } => Some((*kind, *timestamp, payload.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(media, frames());
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::CloseStream { .. })));
    }

    #[tokio::test]
    async fn rejected_publish_over_tcp() {
        let (base, _server) = start().await;
        let client = Client::connect(&format!("{base}/bad")).await.unwrap();
        match client.publish().await {
            Err(ClientError::Rejected { code, description }) => {
                assert_eq!(code, "NetStream.Publish.BadName");
                assert_eq!(description, "Stream bad is busy");
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("publish accepted"),
        }
    }

    #[tokio::test]
    async fn play_over_tcp() {
        let (base, _server) = start().await;
        let mut player = Client::connect(&format!("{base}/test"))
            .await
            .unwrap()
            .play()
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Some(m) = player.recv().await.unwrap() {
            got.push((m.kind, m.timestamp, m.payload));
        }
        assert_eq!(got, frames());
        // End of stream is sticky.
        assert!(player.recv().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn connect_refused_and_bad_url() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("rtmp://127.0.0.1:{port}/live/x");
        assert!(matches!(
            Client::connect(&url).await,
            Err(ClientError::Io { .. })
        ));
        assert!(matches!(
            Client::connect("http://x/y/z").await,
            Err(ClientError::Url(_))
        ));
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _keep = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            drop(sock);
        });
        let options = rtmp::client::ClientOptions {
            timeout: std::time::Duration::from_millis(200),
            ..Default::default()
        };
        let r = Client::connect_with(&format!("rtmp://127.0.0.1:{port}/live/x"), options).await;
        assert!(matches!(r, Err(ClientError::Timeout(_))), "{:?}", r.err());
    }
}

/// SRS's bandwidth test through both sessions, bytes cut into random pieces: every packet
/// of the exchange arrives as the step it is, with its numbers, both ways.
#[test]
fn bandcheck_packets_cross_both_ways() {
    use rtmp::bandcheck::{self, Packet, Report, Sample, Step};
    for seed in 1..8 {
        let mut p = Pair::default_pair(seed);
        p.connect();
        p.server_events.clear();
        p.client_events.clear();
        let report = Report {
            start_time: 1,
            end_time: 6_001,
            play: Sample {
                bytes: 750_000,
                duration_ms: 3_000,
            },
            publish: Sample {
                bytes: 375_000,
                duration_ms: 3_000,
            },
        };
        let from_server = [
            bandcheck::start(Step::StartPlay, 4000, 3000),
            Packet::filler(Step::Playing, 41),
            bandcheck::stop(Step::StopPlay, 3000, &report.play),
            bandcheck::start(Step::StartPublish, 4000, 3000),
            report.to_packet(),
        ];
        for pk in &from_server {
            p.server.send_bandcheck(pk);
        }
        let from_client = [
            Packet::new(Step::StartingPlay),
            Packet::new(Step::StoppedPlay),
            Packet::filler(Step::Publishing, 7),
            Packet::new(Step::StopPublish),
            Packet::new(Step::Final),
        ];
        for pk in &from_client {
            p.client.send_bandcheck(pk).unwrap();
        }
        p.pump();
        let got: Vec<&Packet> = p
            .client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Bandcheck(pk) => Some(pk),
                _ => None,
            })
            .collect();
        assert_eq!(got.len(), from_server.len(), "{:?}", p.client_events);
        for (g, w) in got.iter().zip(&from_server) {
            assert_eq!(g.step, w.step);
        }
        assert_eq!(got[0].number("limit_kbps"), Some(4000.0));
        assert_eq!(got[2].number("bytes_delta"), Some(750_000.0));
        assert_eq!(Report::from_packet(got[4]), report);
        assert_eq!(Report::kbps(got[4]), (2000, 1000));
        let steps: Vec<Step> = p
            .server_events
            .iter()
            .filter_map(|e| match e {
                Event::Bandcheck(pk) => Some(pk.step),
                _ => None,
            })
            .collect();
        assert_eq!(
            steps,
            from_client.iter().map(|pk| pk.step).collect::<Vec<_>>()
        );
    }
}

/// SRS's RTMP 302: the server's redirect reaches the client as a play error carrying the
/// target (`redirect2`, the full URL), byte-compatible with SRS's `SrsRtmpServer::redirect`.
#[test]
fn redirect_reaches_the_client_with_its_target() {
    for seed in 1..6 {
        let mut p = Pair::default_pair(seed * 7);
        // The server answers the play with a redirect instead of Play.Start.
        p.redirect_play = Some("rtmp://10.0.0.2:19350/live/cam?token=1");
        p.connect();
        p.client.play("cam?token=1").unwrap();
        p.pump();
        assert!(!p
            .client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Playing { .. })));
        let (command, status) = p
            .client_events
            .iter()
            .find_map(|e| match e {
                ClientEvent::Error { command, status } => Some((command.clone(), status.clone())),
                _ => None,
            })
            .expect("no error event");
        assert_eq!(command, "play");
        assert_eq!(status.level, "error");
        assert_eq!(status.code, "NetConnection.Connect.Rejected");
        assert_eq!(status.description, "RTMP 302 Redirect");
        assert_eq!(
            status.redirect,
            Some(rtmp::client::Redirect::Url(
                "rtmp://10.0.0.2:19350/live/cam?token=1".into()
            ))
        );
        // On the wire: onStatus with ex.code 302, redirect (the tcUrl) and redirect2.
        let mut dec = ChunkDecoder::new(DecoderLimits::default());
        let mut buf = BytesMut::new();
        let mut s = ServerSession::new(ServerConfig::default());
        s.redirect("rtmp://h:1/app/s");
        buf.extend_from_slice(&s.take_output().unwrap());
        let raw = dec.decode(&mut buf).unwrap().expect("one message");
        match Message::decode(raw.header.type_id, raw.payload).unwrap() {
            Message::Command(c) => {
                assert_eq!(c.name, "onStatus");
                let info = &c.args[0];
                let ex = info.get("ex").expect("ex");
                assert_eq!(ex.get("code").and_then(Amf0Value::as_number), Some(302.0));
                assert_eq!(
                    ex.get("redirect").and_then(Amf0Value::as_str),
                    Some("rtmp://h:1/app")
                );
                assert_eq!(
                    ex.get("redirect2").and_then(Amf0Value::as_str),
                    Some("rtmp://h:1/app/s")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
