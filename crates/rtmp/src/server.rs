//! The server side of one RTMP connection, after the handshake, sans-IO.
//!
//! Bytes from the socket go in through [`ServerSession::feed`], which answers
//! protocol control (chunk size, window acknowledgement, ping) and the
//! bookkeeping commands (releaseStream, FCPublish, createStream, ...) itself and
//! hands the caller the [`Event`]s that need a decision: connect, publish, play,
//! media. The caller answers with `accept_*`/`reject_*` and takes the bytes to
//! send from [`ServerSession::take_output`]. Media for players is encoded with
//! [`ServerSession::encode_media`] straight into a list of shared buffers.

use std::collections::VecDeque;

use amf::Amf0Value;
use bytes::{Bytes, BytesMut};

use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkError, DecoderLimits, MessageHeader};
use crate::control::{self, Acks};
use crate::message::{msg_type, split_aggregate, Command, Message, MessageError, UserControl};

/// Chunk stream ids we send on (the values SRS and FMS use).
pub mod csid {
    pub const PROTOCOL: u32 = 2;
    pub const COMMAND: u32 = 3;
    pub const AUDIO: u32 = 4;
    pub const DATA: u32 = 5;
    pub const VIDEO: u32 = 6;
    pub const STREAM_COMMAND: u32 = 5;
}

/// Most message streams (createStream) one connection may hold open.
pub const MAX_STREAMS: u32 = 16;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Chunk size we send with (announced with Set Chunk Size after connect).
    pub chunk_size: u32,
    /// Window Acknowledgement Size we ask the client to acknowledge us with.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth value (limit type dynamic).
    pub peer_bandwidth: u32,
    pub limits: DecoderLimits,
    /// Shown in the connect reply (`fmsVer`, `data.srs_server`...).
    pub server_name: String,
    pub server_version: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            chunk_size: 60_000,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            limits: DecoderLimits::default(),
            server_name: "sluice".into(),
            server_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("message: {0}")]
    Message(#[from] MessageError),
    #[error("protocol: {0}")]
    Protocol(#[from] ProtocolError),
}

/// A command the session refuses in its current state: the peer does not speak RTMP as a
/// server expects it, so the connection is closed. A type rather than text so that callers
/// (logs, stats, tests) can tell the cases apart.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    /// The first command must be `connect`.
    #[error("expected connect, got {0:?}")]
    ExpectedConnect(String),
    #[error("connect sent twice")]
    ConnectTwice,
    /// More than [`MAX_STREAMS`] `createStream`: a client looping on it would grow state.
    #[error("more than {MAX_STREAMS} createStream")]
    TooManyStreams,
}

/// What the client asked for in `connect`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectInfo {
    pub app: String,
    pub tc_url: String,
    pub page_url: String,
    pub swf_url: String,
    pub flash_ver: String,
    pub object_encoding: f64,
    pub transaction_id: f64,
    /// The whole command object, for hooks and logs.
    pub properties: Amf0Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
    /// onMetaData (with `@setDataFrame` removed).
    Metadata,
}

impl MediaKind {
    /// Audio and video messages, which skip the generic decode: their payload goes on
    /// untouched (server and client sessions alike).
    pub fn of_av_message(type_id: u8) -> Option<MediaKind> {
        match type_id {
            msg_type::AUDIO => Some(MediaKind::Audio),
            msg_type::VIDEO => Some(MediaKind::Video),
            _ => None,
        }
    }
}

/// Something the caller must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Connect(ConnectInfo),
    Publish {
        stream_id: u32,
        /// Stream name as sent, with any `?query`.
        name: String,
        /// live, record or append.
        kind: String,
    },
    Play {
        stream_id: u32,
        name: String,
        start: f64,
        duration: f64,
        reset: bool,
    },
    Pause {
        stream_id: u32,
        pause: bool,
        time_ms: f64,
    },
    /// FCUnpublish, or closeStream/deleteStream of a stream (the caller knows
    /// whether it was publishing or playing on it).
    CloseStream {
        stream_id: u32,
    },
    Media {
        kind: MediaKind,
        stream_id: u32,
        timestamp: u32,
        payload: Bytes,
    },
    SetBufferLength {
        stream_id: u32,
        buffer_ms: u32,
    },
    /// A packet of SRS's bandwidth test (see [`crate::bandcheck`]).
    Bandcheck(crate::bandcheck::Packet),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitConnect,
    Connecting,
    Connected,
}

pub struct ServerSession {
    config: ServerConfig,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    out: Vec<u8>,
    events: VecDeque<Event>,
    state: State,
    /// Bytes from the client and its Window Acknowledgement Size.
    acks: Acks,
    streams_created: u32,
    connect_tid: f64,
    object_encoding: f64,
    fcpublish: bool,
}

fn status(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
        ("description", Amf0Value::string(description)),
    ])
}

impl ServerSession {
    pub fn new(config: ServerConfig) -> ServerSession {
        ServerSession {
            decoder: ChunkDecoder::new(config.limits),
            encoder: ChunkEncoder::new(),
            config,
            out: Vec::new(),
            events: VecDeque::new(),
            state: State::AwaitConnect,
            acks: Acks::default(),
            streams_created: 0,
            connect_tid: 1.0,
            object_encoding: 0.0,
            fcpublish: false,
        }
    }

    /// Total bytes consumed from the client.
    pub fn bytes_in(&self) -> u64 {
        self.acks.bytes_in()
    }

    /// The inbound chunk decoder's limits from the next chunk on (see
    /// [`ChunkDecoder::set_limits`]).
    pub fn set_decoder_limits(&mut self, limits: DecoderLimits) {
        self.decoder.set_limits(limits);
    }

    /// Bytes the client has sent of messages not yet complete.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    pub fn chunk_size_out(&self) -> u32 {
        self.encoder.chunk_size()
    }

    /// Bytes waiting to be sent (replies, control), in order. Send them before
    /// any media encoded afterwards.
    pub fn take_output(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(Bytes::from(std::mem::take(&mut self.out)))
        }
    }

    /// Whether the client announced its publish with FCPublish (FMLE, ffmpeg, OBS)
    /// rather than publishing directly (Flash).
    pub fn used_fcpublish(&self) -> bool {
        self.fcpublish
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Consumes bytes from `buf` until an event is ready or more bytes are needed.
    pub fn feed(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, SessionError> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(Some(ev));
            }
            let before = buf.len();
            let msg = self.decoder.decode(buf)?;
            self.acks.received(before - buf.len());
            self.maybe_ack();
            let Some(raw) = msg else {
                return Ok(None);
            };
            if raw.header.type_id == msg_type::AGGREGATE {
                for (h, payload) in split_aggregate(&raw.header, &raw.payload)? {
                    self.on_message(&h, payload)?;
                }
                continue;
            }
            self.on_message(&raw.header, raw.payload)?;
        }
    }

    fn maybe_ack(&mut self) {
        control::ack_if_due(&mut self.acks, &mut self.encoder, &mut self.out);
    }

    fn on_message(&mut self, header: &MessageHeader, payload: Bytes) -> Result<(), SessionError> {
        let stream_id = header.stream_id;
        if let Some(kind) = MediaKind::of_av_message(header.type_id) {
            self.events.push_back(Event::Media {
                kind,
                stream_id,
                timestamp: header.timestamp,
                payload,
            });
            return Ok(());
        }
        let msg = Message::decode(header.type_id, payload)?;
        let Some(msg) = control::handle(
            msg,
            &mut self.decoder,
            &mut self.acks,
            &mut self.encoder,
            &mut self.out,
        )?
        else {
            return Ok(());
        };
        match msg {
            Message::UserControl(UserControl::SetBufferLength {
                stream_id,
                buffer_ms,
            }) => {
                self.events.push_back(Event::SetBufferLength {
                    stream_id,
                    buffer_ms,
                });
            }
            Message::UserControl(_) => {}
            Message::Data { values, payload } => self.on_data(header, values, payload),
            Message::Command(cmd) => self.on_command(stream_id, cmd)?,
            Message::Audio(_)
            | Message::Video(_)
            | Message::Aggregate(_)
            | Message::Other { .. } => {}
            // Taken by `control::handle` above.
            Message::SetChunkSize(_)
            | Message::Abort { .. }
            | Message::WindowAckSize(_)
            | Message::Acknowledgement { .. }
            | Message::SetPeerBandwidth { .. } => {}
        }
        Ok(())
    }

    /// Keeps onMetaData (sent bare or behind `@setDataFrame`) and re-encodes it
    /// as a plain `onMetaData` data message, the form players expect.
    fn on_data(&mut self, header: &MessageHeader, mut values: Vec<Amf0Value>, payload: Bytes) {
        let first = values.first().and_then(|v| v.as_str()).unwrap_or("");
        let payload = match first {
            "@setDataFrame" => {
                values.remove(0);
                if values.first().and_then(|v| v.as_str()) != Some("onMetaData") {
                    return;
                }
                let mut buf = Vec::with_capacity(payload.len());
                amf::encode_all(&values, &mut buf);
                Bytes::from(buf)
            }
            "onMetaData" => payload,
            _ => return,
        };
        self.events.push_back(Event::Media {
            kind: MediaKind::Metadata,
            stream_id: header.stream_id,
            timestamp: header.timestamp,
            payload,
        });
    }

    fn on_command(&mut self, stream_id: u32, cmd: Command) -> Result<(), SessionError> {
        let tid = cmd.transaction_id;
        let arg_str = |i: usize| {
            cmd.args
                .get(i)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let arg_num = |i: usize, d: f64| cmd.args.get(i).and_then(|v| v.as_number()).unwrap_or(d);
        if self.state == State::AwaitConnect {
            if cmd.name != "connect" {
                return Err(ProtocolError::ExpectedConnect(cmd.name).into());
            }
            let obj = &cmd.object;
            let s = |k: &str| {
                obj.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let info = ConnectInfo {
                app: s("app"),
                tc_url: s("tcUrl"),
                page_url: s("pageUrl"),
                swf_url: s("swfUrl"),
                flash_ver: s("flashVer"),
                object_encoding: obj
                    .get("objectEncoding")
                    .and_then(|v| v.as_number())
                    .unwrap_or(0.0),
                transaction_id: tid,
                properties: obj.clone(),
            };
            self.connect_tid = tid;
            self.object_encoding = info.object_encoding;
            self.state = State::Connecting;
            self.events.push_back(Event::Connect(info));
            return Ok(());
        }
        match cmd.name.as_str() {
            "connect" => {
                return Err(ProtocolError::ConnectTwice.into());
            }
            "releaseStream" => self.result(tid, Amf0Value::Undefined),
            "FCPublish" => {
                self.fcpublish = true;
                self.result(tid, Amf0Value::Undefined)
            }
            "createStream" => {
                if self.streams_created >= MAX_STREAMS {
                    return Err(ProtocolError::TooManyStreams.into());
                }
                self.streams_created += 1;
                self.result(tid, Amf0Value::Number(f64::from(self.streams_created)));
            }
            "publish" => self.events.push_back(Event::Publish {
                stream_id,
                name: arg_str(0),
                kind: if arg_str(1).is_empty() {
                    "live".into()
                } else {
                    arg_str(1)
                },
            }),
            "play" => self.events.push_back(Event::Play {
                stream_id,
                name: arg_str(0),
                start: arg_num(1, -2.0),
                duration: arg_num(2, -1.0),
                reset: cmd.args.get(3).and_then(|v| v.as_bool()).unwrap_or(true),
            }),
            "pause" => self.events.push_back(Event::Pause {
                stream_id,
                pause: cmd.args.first().and_then(|v| v.as_bool()).unwrap_or(true),
                time_ms: arg_num(1, 0.0),
            }),
            "FCUnpublish" => {
                self.send_command(
                    csid::STREAM_COMMAND,
                    stream_id,
                    "onFCUnpublish",
                    0.0,
                    vec![status(
                        "status",
                        "NetStream.Unpublish.Success",
                        "Stop publishing",
                    )],
                );
                self.result(tid, Amf0Value::Undefined);
                // The stream being unpublished is the one FCPublish named; in
                // practice clients publish on stream 1 (ffmpeg, OBS, FMLE).
                self.events.push_back(Event::CloseStream {
                    stream_id: stream_id.max(1),
                });
            }
            "closeStream" => self.events.push_back(Event::CloseStream { stream_id }),
            "deleteStream" => {
                let id = cmd.args.first().and_then(|v| v.as_number()).unwrap_or(0.0);
                let id = if id.is_finite() && id >= 0.0 && id <= f64::from(u32::MAX) {
                    id as u32
                } else {
                    0
                };
                self.events.push_back(Event::CloseStream { stream_id: id });
            }
            "getStreamLength" => self.result(tid, Amf0Value::Number(0.0)),
            name if crate::bandcheck::Step::from_name(name).is_some() => {
                if let Some(p) = crate::bandcheck::Packet::from_command(&cmd) {
                    self.events.push_back(Event::Bandcheck(p));
                }
            }
            _ => {
                // Unknown calls (checkbw, _checkbw, custom RPC) get an empty result
                // when the client waits for one, so it never hangs on us.
                if tid > 0.0 {
                    self.result(tid, Amf0Value::Undefined);
                }
            }
        }
        Ok(())
    }

    fn result(&mut self, tid: f64, value: Amf0Value) {
        self.send_command(csid::COMMAND, 0, "_result", tid, vec![value]);
    }

    fn send_message(&mut self, csid: u32, stream_id: u32, msg: &Message) {
        control::send(&mut self.encoder, &mut self.out, csid, stream_id, msg);
    }

    fn send_command(
        &mut self,
        csid: u32,
        stream_id: u32,
        name: &str,
        tid: f64,
        args: Vec<Amf0Value>,
    ) {
        self.send_command_with(csid, stream_id, name, tid, Amf0Value::Null, args);
    }

    fn send_command_with(
        &mut self,
        csid: u32,
        stream_id: u32,
        name: &str,
        tid: f64,
        object: Amf0Value,
        args: Vec<Amf0Value>,
    ) {
        let msg = Message::Command(Command::new(name, tid, object, args));
        self.send_message(csid, stream_id, &msg);
    }

    fn send_status(&mut self, stream_id: u32, info: Amf0Value) {
        self.send_command(csid::STREAM_COMMAND, stream_id, "onStatus", 0.0, vec![info]);
    }

    fn set_chunk_size(&mut self, size: u32) {
        self.send_message(csid::PROTOCOL, 0, &Message::SetChunkSize(size));
        self.encoder.set_chunk_size(size);
    }

    /// Sends a packet of SRS's bandwidth test (AMF0 command on chunk stream 5, message
    /// stream 0, as SRS's `SrsBandwidthPacket`).
    pub fn send_bandcheck(&mut self, packet: &crate::bandcheck::Packet) {
        self.send_message(crate::bandcheck::CSID, 0, &packet.to_message());
    }

    /// Accepts the connect: window, bandwidth, chunk size, then `_result`.
    pub fn accept_connect(&mut self) {
        self.state = State::Connected;
        self.send_message(
            csid::PROTOCOL,
            0,
            &Message::WindowAckSize(self.config.window_ack_size),
        );
        self.send_message(
            csid::PROTOCOL,
            0,
            &Message::SetPeerBandwidth {
                size: self.config.peer_bandwidth,
                limit_type: 2,
            },
        );
        self.set_chunk_size(self.config.chunk_size);
        let props = Amf0Value::object([
            ("fmsVer", Amf0Value::string("FMS/3,5,3,888")),
            ("capabilities", Amf0Value::Number(127.0)),
            ("mode", Amf0Value::Number(1.0)),
        ]);
        let mut info = match status(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded",
        ) {
            Amf0Value::Object(p) => p,
            _ => Vec::new(),
        };
        info.push((
            "objectEncoding".into(),
            Amf0Value::Number(self.object_encoding),
        ));
        info.push((
            "data".into(),
            Amf0Value::EcmaArray(vec![
                (
                    "version".into(),
                    Amf0Value::string(self.config.server_version.clone()),
                ),
                (
                    "srs_server".into(),
                    Amf0Value::string(self.config.server_name.clone()),
                ),
            ]),
        ));
        let tid = self.connect_tid;
        self.send_command_with(
            csid::COMMAND,
            0,
            "_result",
            tid,
            props,
            vec![Amf0Value::Object(info)],
        );
    }

    pub fn reject_connect(&mut self, description: &str) {
        let tid = self.connect_tid;
        self.send_command(
            csid::COMMAND,
            0,
            "_error",
            tid,
            vec![status(
                "error",
                "NetConnection.Connect.Rejected",
                description,
            )],
        );
    }

    pub fn accept_publish(&mut self, stream_id: u32) {
        if self.fcpublish {
            self.send_command(
                csid::STREAM_COMMAND,
                stream_id,
                "onFCPublish",
                0.0,
                vec![status(
                    "status",
                    "NetStream.Publish.Start",
                    "Started publishing stream.",
                )],
            );
        }
        self.send_status(
            stream_id,
            status(
                "status",
                "NetStream.Publish.Start",
                "Started publishing stream.",
            ),
        );
    }

    /// Refuses a publish with an error status (e.g. `NetStream.Publish.BadName`).
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str) {
        self.send_status(stream_id, status("error", code, description));
    }

    pub fn accept_play(&mut self, stream_id: u32, name: &str, reset: bool) {
        self.send_message(
            csid::PROTOCOL,
            0,
            &Message::UserControl(UserControl::StreamBegin(stream_id)),
        );
        if reset {
            self.send_status(
                stream_id,
                status(
                    "status",
                    "NetStream.Play.Reset",
                    &format!("Playing and resetting {name}."),
                ),
            );
        }
        self.send_status(
            stream_id,
            status(
                "status",
                "NetStream.Play.Start",
                &format!("Started playing {name}."),
            ),
        );
        let access = Message::Data {
            values: vec![
                Amf0Value::string("|RtmpSampleAccess"),
                Amf0Value::Boolean(true),
                Amf0Value::Boolean(true),
            ],
            payload: Bytes::new(),
        };
        self.send_message(csid::DATA, stream_id, &access);
        self.send_status(
            stream_id,
            status("status", "NetStream.Data.Start", "Started playing."),
        );
    }

    pub fn reject_play(&mut self, stream_id: u32, code: &str, description: &str) {
        self.send_status(stream_id, status("error", code, description));
    }

    /// SRS's RTMP 302 (`SrsRtmpServer::redirect`): an error status
    /// `NetConnection.Connect.Rejected` whose `ex` carries `code` 302, `redirect` (the
    /// target's tcUrl) and `redirect2` (its full URL). Sent as `onStatus` on message
    /// stream 0, as SRS does; SRS edges, sluice's client and librtmp-style clients follow it.
    pub fn redirect(&mut self, url: &str) {
        let tc_url = match url.rsplit_once('/') {
            Some((dir, _)) if dir.contains("://") && dir.matches('/').count() >= 3 => dir,
            _ => url,
        };
        let ex = Amf0Value::object([
            ("code", Amf0Value::Number(302.0)),
            ("redirect", Amf0Value::string(tc_url)),
            ("redirect2", Amf0Value::string(url)),
        ]);
        let info = Amf0Value::object([
            ("level", Amf0Value::string("error")),
            ("code", Amf0Value::string("NetConnection.Connect.Rejected")),
            ("description", Amf0Value::string("RTMP 302 Redirect")),
            ("ex", ex),
        ]);
        self.send_status(0, info);
    }

    /// Any status on a stream (UnpublishNotify, PublishNotify, Pause.Notify...).
    pub fn status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        self.send_status(stream_id, status(level, code, description));
    }

    /// Encodes one media message for a player, appending header and payload
    /// slices to `out` (the payload is shared, not copied).
    pub fn encode_media(
        &self,
        kind: MediaKind,
        stream_id: u32,
        timestamp: u32,
        payload: &Bytes,
        out: &mut Vec<Bytes>,
    ) {
        let (csid, type_id) = match kind {
            MediaKind::Audio => (csid::AUDIO, msg_type::AUDIO),
            MediaKind::Video => (csid::VIDEO, msg_type::VIDEO),
            MediaKind::Metadata => (csid::DATA, msg_type::DATA_AMF0),
        };
        let header = MessageHeader {
            timestamp,
            length: payload.len() as u32,
            type_id,
            stream_id,
        };
        self.encoder.encode(csid, &header, payload, out);
    }
}
