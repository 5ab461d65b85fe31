//! The client side of one RTMP connection, after the handshake, sans-IO.
//!
//! The caller queues intents ([`ClientSession::connect`], [`ClientSession::publish`],
//! [`ClientSession::play`]), moves bytes (`feed` in, `take_output` out) and reacts to
//! [`ClientEvent`]s. The session does the bookkeeping a real client needs and callers should
//! not have to think about: transaction ids, the createStream round trip before publish/play,
//! acknowledgements, ping replies and the peer's chunk size.

use std::collections::{HashMap, VecDeque};

use amf::Amf0Value;
use bytes::{Bytes, BytesMut};

use crate::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkError, DecoderLimits, MessageHeader, MessageRef,
};
use crate::control::{self, Acks};
use crate::message::{msg_type, split_aggregate, Command, Message, MessageError, UserControl};
use crate::server::csid;
pub use crate::server::MediaKind;

/// What FMLE-style encoders announce; servers (SRS, nginx-rtmp) key some behaviour on "FMLE".
pub const DEFAULT_FLASH_VER: &str = "FMLE/3.0 (compatible; sluice)";

/// Chunk size we publish with: large chunks mean fewer headers and fewer writes for video.
pub const DEFAULT_CHUNK_SIZE: u32 = 60_000;

/// Buffer length a player announces (what ffmpeg and Flash Player use by default).
pub const DEFAULT_BUFFER_MS: u32 = 3_000;

/// Most commands waiting for a reply at once; a server that never answers cannot make the
/// transaction table grow without bound.
const MAX_PENDING_TRANSACTIONS: usize = 64;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Application name, with any `?vhost=...` query (sent as `app` in connect).
    pub app: String,
    /// `rtmp://host[:port]/app`, which servers use to pick the vhost.
    pub tc_url: String,
    pub flash_ver: String,
    pub swf_url: Option<String>,
    pub page_url: Option<String>,
    /// Chunk size announced before publishing.
    pub chunk_size: u32,
    /// Set Buffer Length announced when playing.
    pub buffer_ms: u32,
    /// `start` argument of play: -2 = live or recorded, -1 = live only, >= 0 = recorded from.
    pub play_start: f64,
    pub limits: DecoderLimits,
}

impl ClientConfig {
    pub fn new(app: impl Into<String>, tc_url: impl Into<String>) -> ClientConfig {
        ClientConfig {
            app: app.into(),
            tc_url: tc_url.into(),
            flash_ver: DEFAULT_FLASH_VER.into(),
            swf_url: None,
            page_url: None,
            chunk_size: DEFAULT_CHUNK_SIZE,
            buffer_ms: DEFAULT_BUFFER_MS,
            play_start: -2.0,
            limits: DecoderLimits::default(),
        }
    }
}

/// The `level`/`code`/`description` triple servers put in `onStatus` and `_error` replies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub level: String,
    pub code: String,
    pub description: String,
    /// SRS's RTMP 302 (`ex.redirect2`, the full RTMP URL, else `ex.redirect`, a tcUrl)
    /// in an error status: where the stream is served instead.
    pub redirect: Option<Redirect>,
}

/// Where an RTMP 302 sends the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// `ex.redirect2`: the full URL, stream included.
    Url(String),
    /// `ex.redirect` only (older SRS): a tcUrl, to which the stream name is added.
    TcUrl(String),
}

/// Most bytes of a redirect URL taken from a server (a bound on hostile input).
const MAX_REDIRECT_LEN: usize = 2048;

impl Status {
    fn from_info(info: Option<&Amf0Value>) -> Status {
        let s = |k: &str| {
            info.and_then(|v| v.get(k))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let ex = info.and_then(|v| v.get("ex"));
        let ex_str = |k: &str| {
            ex.and_then(|v| v.get(k))
                .and_then(|v| v.as_str())
                .filter(|u| !u.is_empty() && u.len() <= MAX_REDIRECT_LEN)
                .map(str::to_string)
        };
        let redirect = ex_str("redirect2")
            .map(Redirect::Url)
            .or_else(|| ex_str("redirect").map(Redirect::TcUrl));
        Status {
            level: s("level"),
            code: s("code"),
            description: s("description"),
            redirect,
        }
    }

    /// Whether this status means a player will get no more media on the stream.
    pub fn ends_playback(&self) -> bool {
        matches!(
            self.code.as_str(),
            "NetStream.Play.UnpublishNotify" | "NetStream.Play.Stop" | "NetStream.Play.Complete"
        )
    }
}

/// One audio, video or metadata message. Metadata is a plain `onMetaData` data payload (any
/// `@setDataFrame` prefix removed), i.e. exactly what an FLV script tag holds.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaMessage {
    pub kind: MediaKind,
    pub timestamp: u32,
    pub payload: Bytes,
}

/// A [`MediaMessage`] lent to a callback by [`ClientSession::feed_with`]: the payload is
/// borrowed from the read buffer, so a player that only looks at each message once pays no
/// reference count or allocation for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaRef<'a> {
    pub kind: MediaKind,
    pub timestamp: u32,
    pub payload: &'a [u8],
}

impl<'a> From<&'a MediaMessage> for MediaRef<'a> {
    fn from(m: &'a MediaMessage) -> Self {
        MediaRef {
            kind: m.kind,
            timestamp: m.timestamp,
            payload: &m.payload,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// connect was accepted; `info` is the server's reply (code, `data.srs_server`, ...).
    Connected {
        info: Amf0Value,
    },
    /// NetStream.Publish.Start: media may be sent.
    Published {
        stream_id: u32,
    },
    /// NetStream.Play.Start: media will follow.
    Playing {
        stream_id: u32,
    },
    /// Any other status (Play.Reset, Data.Start, UnpublishNotify, Play.Stop...).
    Status(Status),
    Media(MediaMessage),
    /// User control Stream EOF: the server ended the stream we play.
    StreamEof {
        stream_id: u32,
    },
    /// A packet of SRS's bandwidth test (see [`crate::bandcheck`]).
    Bandcheck(crate::bandcheck::Packet),
    /// A refusal: `_error` to one of our commands, or an error-level status during
    /// publish/play. `command` is what was refused (connect, createStream, publish, play).
    Error {
        command: String,
        status: Status,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ClientSessionError {
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("message: {0}")]
    Message(#[from] MessageError),
    #[error("{0} is not allowed now: {1}")]
    State(&'static str, &'static str),
    #[error("server left {MAX_PENDING_TRANSACTIONS} commands unanswered")]
    TooManyPending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Connecting,
    Connected,
    Closed,
}

/// What a stream is being created for, so its createStream reply can continue the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    Publish(String),
    Play(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Connect,
    /// releaseStream, FCPublish, deleteStream...: replies (or `_error`s, which nginx-rtmp and
    /// SRS send for some of them) carry nothing we need.
    Ignored,
    CreateStream(Purpose),
}

pub struct ClientSession {
    config: ClientConfig,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    out: Vec<u8>,
    events: VecDeque<ClientEvent>,
    state: State,
    next_tid: f64,
    pending: HashMap<u64, Pending>,
    /// Stream id from createStream and what it is for, once known.
    stream: Option<(u32, Purpose)>,
    /// Bytes from the server and its Window Acknowledgement Size.
    acks: Acks,
}

fn tid_key(tid: f64) -> Option<u64> {
    (tid.is_finite() && tid >= 0.0 && tid <= u32::MAX as f64).then_some(tid as u64)
}

impl ClientSession {
    pub fn new(config: ClientConfig) -> ClientSession {
        ClientSession {
            decoder: ChunkDecoder::new(config.limits),
            encoder: ChunkEncoder::new(),
            config,
            out: Vec::new(),
            events: VecDeque::new(),
            state: State::Idle,
            next_tid: 1.0,
            pending: HashMap::new(),
            stream: None,
            acks: Acks::default(),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Total bytes consumed from the server.
    pub fn bytes_in(&self) -> u64 {
        self.acks.bytes_in()
    }

    /// Acknowledgements sent so far (for stats and tests).
    pub fn acks_sent(&self) -> u64 {
        self.acks.sent()
    }

    pub fn chunk_size_out(&self) -> u32 {
        self.encoder.chunk_size()
    }

    pub fn chunk_size_in(&self) -> u32 {
        self.decoder.chunk_size()
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// The stream id createStream gave us, once it has answered.
    pub fn stream_id(&self) -> Option<u32> {
        self.stream.as_ref().map(|(id, _)| *id)
    }

    /// Bytes waiting to be sent, in order.
    pub fn take_output(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            Some(Bytes::from(std::mem::take(&mut self.out)))
        }
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Queues the connect command.
    pub fn connect(&mut self) -> Result<(), ClientSessionError> {
        if self.state != State::Idle {
            return Err(ClientSessionError::State(
                "connect",
                "already connecting or connected",
            ));
        }
        let c = &self.config;
        let mut props = vec![
            ("app".to_string(), Amf0Value::string(c.app.clone())),
            ("type".to_string(), Amf0Value::string("nonprivate")),
            (
                "flashVer".to_string(),
                Amf0Value::string(c.flash_ver.clone()),
            ),
        ];
        if let Some(swf) = &c.swf_url {
            props.push(("swfUrl".into(), Amf0Value::string(swf.clone())));
        }
        props.push(("tcUrl".into(), Amf0Value::string(c.tc_url.clone())));
        if let Some(page) = &c.page_url {
            props.push(("pageUrl".into(), Amf0Value::string(page.clone())));
        }
        // What Flash Player/ffmpeg advertise; some servers refuse to play without codecs.
        props.extend([
            ("fpad".to_string(), Amf0Value::Boolean(false)),
            ("capabilities".to_string(), Amf0Value::Number(15.0)),
            ("audioCodecs".to_string(), Amf0Value::Number(4071.0)),
            ("videoCodecs".to_string(), Amf0Value::Number(252.0)),
            ("videoFunction".to_string(), Amf0Value::Number(1.0)),
            ("objectEncoding".to_string(), Amf0Value::Number(0.0)),
        ]);
        self.state = State::Connecting;
        self.call(
            0,
            "connect",
            Amf0Value::Object(props),
            vec![],
            Pending::Connect,
        )
    }

    /// Queues releaseStream, FCPublish and createStream; publish(name, "live") follows when
    /// createStream answers, then [`ClientEvent::Published`] or [`ClientEvent::Error`].
    pub fn publish(&mut self, name: &str) -> Result<(), ClientSessionError> {
        self.check_ready("publish")?;
        let arg = vec![Amf0Value::string(name)];
        self.call(
            0,
            "releaseStream",
            Amf0Value::Null,
            arg.clone(),
            Pending::Ignored,
        )?;
        self.call(0, "FCPublish", Amf0Value::Null, arg, Pending::Ignored)?;
        let purpose = Purpose::Publish(name.to_string());
        self.call(
            0,
            "createStream",
            Amf0Value::Null,
            vec![],
            Pending::CreateStream(purpose),
        )
    }

    /// Queues createStream; play(name, start, -1) and Set Buffer Length follow when it
    /// answers, then [`ClientEvent::Playing`] and media.
    pub fn play(&mut self, name: &str) -> Result<(), ClientSessionError> {
        self.check_ready("play")?;
        let purpose = Purpose::Play(name.to_string());
        self.call(
            0,
            "createStream",
            Amf0Value::Null,
            vec![],
            Pending::CreateStream(purpose),
        )
    }

    /// Queues the polite end of a stream: FCUnpublish (when publishing) and deleteStream.
    pub fn close(&mut self) -> Result<(), ClientSessionError> {
        if let Some((id, purpose)) = self.stream.take() {
            if let Purpose::Publish(name) = &purpose {
                let arg = vec![Amf0Value::string(name.clone())];
                self.call(0, "FCUnpublish", Amf0Value::Null, arg, Pending::Ignored)?;
            }
            // deleteStream expects no reply (transaction id 0), like ffmpeg sends it.
            self.send_command(
                csid::COMMAND,
                0,
                "deleteStream",
                0.0,
                Amf0Value::Null,
                vec![Amf0Value::Number(f64::from(id))],
            );
        }
        self.state = State::Closed;
        Ok(())
    }

    /// Encodes one media message on the publishing stream. Pending control output (such as
    /// the Set Chunk Size the media depends on) is moved into `out` first so the order on the
    /// wire is always right. Audio and video payloads are shared, not copied; metadata (an
    /// FLV script tag body, `onMetaData` ...) is sent behind `@setDataFrame`, as encoders do.
    pub fn encode_media(
        &mut self,
        kind: MediaKind,
        timestamp: u32,
        payload: &Bytes,
        out: &mut Vec<Bytes>,
    ) {
        if let Some(pending) = self.take_output() {
            out.push(pending);
        }
        let stream_id = self.stream_id().unwrap_or(1);
        let (csid, type_id) = match kind {
            MediaKind::Audio => (csid::AUDIO, msg_type::AUDIO),
            MediaKind::Video => (csid::VIDEO, msg_type::VIDEO),
            MediaKind::Metadata => (csid::DATA, msg_type::DATA_AMF0),
        };
        let payload =
            if kind == MediaKind::Metadata && !starts_with_string(payload, "@setDataFrame") {
                let mut buf = Vec::with_capacity(payload.len() + 16);
                Amf0Value::string("@setDataFrame").encode(&mut buf);
                buf.extend_from_slice(payload);
                Bytes::from(buf)
            } else {
                payload.clone()
            };
        let header = MessageHeader {
            timestamp,
            length: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            type_id,
            stream_id,
        };
        self.encoder.encode(csid, &header, &payload, out);
    }

    /// Consumes bytes from `buf` until an event is ready or more bytes are needed.
    pub fn feed(&mut self, buf: &mut BytesMut) -> Result<Option<ClientEvent>, ClientSessionError> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(Some(ev));
            }
            let before = buf.len();
            let msg = self.decoder.decode(buf)?;
            self.acks.received(before.saturating_sub(buf.len()));
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

    /// [`ClientSession::feed`] for a caller that consumes media on the spot: audio and video
    /// go to `on_media` with their payload borrowed from `buf` instead of being split off,
    /// queued and returned one by one. Everything else (metadata, aggregates, control
    /// messages, commands) takes the same path as in `feed`; media among it is lent to
    /// `on_media` as well, in arrival order. Returns the first non-media event, or `Ok(None)`
    /// once `buf` holds no complete message.
    pub fn feed_with(
        &mut self,
        buf: &mut BytesMut,
        on_media: &mut impl FnMut(MediaRef<'_>),
    ) -> Result<Option<ClientEvent>, ClientSessionError> {
        loop {
            while let Some(ev) = self.events.pop_front() {
                match ev {
                    ClientEvent::Media(m) => on_media(MediaRef::from(&m)),
                    ev => return Ok(Some(ev)),
                }
            }
            let before = buf.len();
            let msg = self.decoder.decode_with(buf, |m: MessageRef<'_>| {
                let kind = match m.header.type_id {
                    msg_type::AUDIO => MediaKind::Audio,
                    msg_type::VIDEO => MediaKind::Video,
                    // Rare (commands, control, metadata): a copy keeps one code path for them.
                    _ => return Some((m.header, Bytes::copy_from_slice(m.payload))),
                };
                on_media(MediaRef {
                    kind,
                    timestamp: m.header.timestamp,
                    payload: m.payload,
                });
                None
            })?;
            self.acks.received(before.saturating_sub(buf.len()));
            self.maybe_ack();
            let Some(other) = msg else {
                return Ok(None);
            };
            let Some((header, payload)) = other else {
                continue;
            };
            if header.type_id == msg_type::AGGREGATE {
                for (h, payload) in split_aggregate(&header, &payload)? {
                    self.on_message(&h, payload)?;
                }
                continue;
            }
            self.on_message(&header, payload)?;
        }
    }

    fn check_ready(&self, what: &'static str) -> Result<(), ClientSessionError> {
        if self.state != State::Connected {
            return Err(ClientSessionError::State(what, "not connected"));
        }
        if self.stream.is_some()
            || self
                .pending
                .values()
                .any(|p| matches!(p, Pending::CreateStream(_)))
        {
            return Err(ClientSessionError::State(
                what,
                "a stream is already open on this session",
            ));
        }
        Ok(())
    }

    fn maybe_ack(&mut self) {
        control::ack_if_due(&mut self.acks, &mut self.encoder, &mut self.out);
    }

    fn on_message(
        &mut self,
        header: &MessageHeader,
        payload: Bytes,
    ) -> Result<(), ClientSessionError> {
        if let Some(kind) = MediaKind::of_av_message(header.type_id) {
            self.events.push_back(ClientEvent::Media(MediaMessage {
                kind,
                timestamp: header.timestamp,
                payload,
            }));
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
            Message::UserControl(UserControl::StreamEof(stream_id)) => {
                self.events.push_back(ClientEvent::StreamEof { stream_id });
            }
            Message::UserControl(_) => {}
            Message::Data { values, payload } => self.on_data(header.timestamp, values, payload),
            Message::Command(cmd) => self.on_command(cmd),
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

    /// Keeps onMetaData only (|RtmpSampleAccess and friends are player plumbing), in the
    /// plain form an FLV script tag holds.
    fn on_data(&mut self, timestamp: u32, mut values: Vec<Amf0Value>, payload: Bytes) {
        let payload = match values.first().and_then(|v| v.as_str()) {
            Some("onMetaData") => payload,
            Some("@setDataFrame") => {
                values.remove(0);
                if values.first().and_then(|v| v.as_str()) != Some("onMetaData") {
                    return;
                }
                let mut buf = Vec::with_capacity(payload.len());
                amf::encode_all(&values, &mut buf);
                Bytes::from(buf)
            }
            _ => return,
        };
        self.events.push_back(ClientEvent::Media(MediaMessage {
            kind: MediaKind::Metadata,
            timestamp,
            payload,
        }));
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd.name.as_str() {
            "_result" | "_error" => {
                let Some(pending) =
                    tid_key(cmd.transaction_id).and_then(|k| self.pending.remove(&k))
                else {
                    return;
                };
                if cmd.name == "_result" {
                    self.on_result(pending, &cmd);
                } else {
                    self.on_error(pending, &cmd);
                }
            }
            "onStatus" => {
                // The info object is the first argument; a few servers put it in the
                // command object slot instead.
                let info = cmd
                    .args
                    .first()
                    .filter(|v| v.properties().is_some())
                    .or(Some(&cmd.object));
                self.on_status(Status::from_info(info));
            }
            name if crate::bandcheck::Step::from_name(name).is_some() => {
                if let Some(p) = crate::bandcheck::Packet::from_command(&cmd) {
                    self.events.push_back(ClientEvent::Bandcheck(p));
                }
            }
            // onBWDone, onFCPublish, onFCUnpublish, _checkbw, close...: nothing to do.
            _ => {}
        }
    }

    fn on_result(&mut self, pending: Pending, cmd: &Command) {
        match pending {
            Pending::Connect => {
                self.state = State::Connected;
                let info = cmd.args.first().cloned().unwrap_or(Amf0Value::Null);
                self.events.push_back(ClientEvent::Connected { info });
            }
            Pending::Ignored => {}
            Pending::CreateStream(purpose) => {
                let id = cmd.args.first().and_then(|v| v.as_number()).unwrap_or(-1.0);
                if !(id.is_finite() && id >= 0.0 && id <= f64::from(u32::MAX)) {
                    self.events.push_back(ClientEvent::Error {
                        command: "createStream".into(),
                        status: Status {
                            level: "error".into(),
                            code: String::new(),
                            description: "createStream answered without a valid stream id".into(),
                            redirect: None,
                        },
                    });
                    return;
                }
                let id = id as u32;
                self.start_stream(id, purpose);
            }
        }
    }

    fn start_stream(&mut self, id: u32, purpose: Purpose) {
        match &purpose {
            Purpose::Publish(name) => {
                let size = self.config.chunk_size;
                self.send_message(csid::PROTOCOL, 0, &Message::SetChunkSize(size));
                self.encoder.set_chunk_size(size);
                self.send_command(
                    csid::STREAM_COMMAND,
                    id,
                    "publish",
                    0.0,
                    Amf0Value::Null,
                    vec![Amf0Value::string(name.clone()), Amf0Value::string("live")],
                );
            }
            Purpose::Play(name) => {
                let start = self.config.play_start;
                self.send_command(
                    csid::STREAM_COMMAND,
                    id,
                    "play",
                    0.0,
                    Amf0Value::Null,
                    vec![
                        Amf0Value::string(name.clone()),
                        Amf0Value::Number(start),
                        Amf0Value::Number(-1.0),
                    ],
                );
                let buffer_ms = self.config.buffer_ms;
                self.send_message(
                    csid::PROTOCOL,
                    0,
                    &Message::UserControl(UserControl::SetBufferLength {
                        stream_id: id,
                        buffer_ms,
                    }),
                );
            }
        }
        self.stream = Some((id, purpose));
    }

    fn on_error(&mut self, pending: Pending, cmd: &Command) {
        let command = match pending {
            Pending::Connect => {
                self.state = State::Closed;
                "connect"
            }
            Pending::CreateStream(_) => "createStream",
            Pending::Ignored => return,
        };
        let info = cmd.args.first();
        self.events.push_back(ClientEvent::Error {
            command: command.into(),
            status: Status::from_info(info),
        });
    }

    fn on_status(&mut self, status: Status) {
        let stream = self.stream.as_ref();
        let stream_id = stream.map_or(0, |(id, _)| *id);
        let command = match stream.map(|(_, p)| p) {
            Some(Purpose::Publish(_)) => "publish",
            Some(Purpose::Play(_)) => "play",
            None => "",
        };
        let event = match status.code.as_str() {
            "NetStream.Publish.Start" => ClientEvent::Published { stream_id },
            "NetStream.Play.Start" => ClientEvent::Playing { stream_id },
            _ if status.level == "error" => ClientEvent::Error {
                command: command.into(),
                status,
            },
            _ => ClientEvent::Status(status),
        };
        self.events.push_back(event);
    }

    fn call(
        &mut self,
        stream_id: u32,
        name: &str,
        object: Amf0Value,
        args: Vec<Amf0Value>,
        pending: Pending,
    ) -> Result<(), ClientSessionError> {
        if self.pending.len() >= MAX_PENDING_TRANSACTIONS {
            return Err(ClientSessionError::TooManyPending);
        }
        let tid = self.next_tid;
        self.next_tid += 1.0;
        if let Some(key) = tid_key(tid) {
            self.pending.insert(key, pending);
        }
        let cs = if stream_id == 0 {
            csid::COMMAND
        } else {
            csid::STREAM_COMMAND
        };
        self.send_command(cs, stream_id, name, tid, object, args);
        Ok(())
    }

    fn send_command(
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

    fn send_message(&mut self, csid: u32, stream_id: u32, msg: &Message) {
        control::send(&mut self.encoder, &mut self.out, csid, stream_id, msg);
    }

    /// Sends a packet of SRS's bandwidth test (once connected; see [`crate::bandcheck`]).
    pub fn send_bandcheck(
        &mut self,
        packet: &crate::bandcheck::Packet,
    ) -> Result<(), ClientSessionError> {
        if self.state != State::Connected {
            return Err(ClientSessionError::State("bandcheck", "not connected"));
        }
        self.send_message(crate::bandcheck::CSID, 0, &packet.to_message());
        Ok(())
    }
}

/// Whether `payload` starts with the AMF0 string `s` (marker 0x02, u16 length, bytes).
fn starts_with_string(payload: &[u8], s: &str) -> bool {
    let Ok(len) = u16::try_from(s.len()) else {
        return false;
    };
    let [hi, lo] = len.to_be_bytes();
    payload.first() == Some(&2)
        && payload.get(1..3) == Some(&[hi, lo][..])
        && payload.get(3..3 + s.len()) == Some(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected() -> ClientSession {
        let mut s = ClientSession::new(ClientConfig::new("live", "rtmp://127.0.0.1/live"));
        s.connect().unwrap();
        // _result for transaction 1 (connect).
        let reply = Message::Command(Command::new(
            "_result",
            1.0,
            Amf0Value::Null,
            vec![Amf0Value::object([(
                "code",
                Amf0Value::string("NetConnection.Connect.Success"),
            )])],
        ));
        let mut buf = BytesMut::from(&encode(&reply, 0)[..]);
        assert!(matches!(
            s.feed(&mut buf).unwrap(),
            Some(ClientEvent::Connected { .. })
        ));
        s.take_output();
        s
    }

    fn encode(msg: &Message, stream_id: u32) -> Vec<u8> {
        let payload = msg.encode_payload();
        let header = MessageHeader {
            timestamp: 0,
            length: payload.len() as u32,
            type_id: msg.type_id(),
            stream_id,
        };
        let mut out = Vec::new();
        ChunkEncoder::new().encode_into(3, &header, &payload, &mut out);
        out
    }

    #[test]
    fn set_buffer_length_matches_srs_vector() {
        // vectors.json enc_user_control_set_buffer_length: stream 1, 0x10 ms.
        let mut s = connected();
        s.config.buffer_ms = 0x10;
        s.play("x").unwrap();
        s.take_output();
        let reply = Message::Command(Command::new(
            "_result",
            2.0,
            Amf0Value::Null,
            vec![Amf0Value::Number(1.0)],
        ));
        let mut buf = BytesMut::from(&encode(&reply, 0)[..]);
        assert!(s.feed(&mut buf).unwrap().is_none());
        let out = s.take_output().unwrap();
        let expected = [
            0x02, 0, 0, 0, 0, 0, 0x0a, 0x04, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 1, 0, 0, 0, 0x10,
        ];
        assert!(out.ends_with(&expected));
    }

    #[test]
    fn publish_before_connect_is_refused() {
        let mut s = ClientSession::new(ClientConfig::new("live", "rtmp://h/live"));
        assert!(matches!(s.publish("x"), Err(ClientSessionError::State(..))));
    }

    #[test]
    fn metadata_gets_set_data_frame_once() {
        let mut s = connected();
        let mut plain = Vec::new();
        Amf0Value::string("onMetaData").encode(&mut plain);
        Amf0Value::object([("width", Amf0Value::Number(640.0))]).encode(&mut plain);
        let plain = Bytes::from(plain);
        let mut framed = Vec::new();
        Amf0Value::string("@setDataFrame").encode(&mut framed);
        framed.extend_from_slice(&plain);
        let framed = Bytes::from(framed);
        for input in [&plain, &framed] {
            let mut out = Vec::new();
            s.encode_media(MediaKind::Metadata, 0, input, &mut out);
            let wire: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
            let mut buf = BytesMut::from(&wire[..]);
            let msg = ChunkDecoder::new(DecoderLimits::default())
                .decode(&mut buf)
                .unwrap()
                .unwrap();
            assert_eq!(msg.payload, framed);
        }
    }

    #[test]
    fn hostile_replies_do_not_panic() {
        let mut s = connected();
        let bad = [
            Message::Command(Command::new("_result", f64::NAN, Amf0Value::Null, vec![])),
            Message::Command(Command::new("_result", -1.0, Amf0Value::Null, vec![])),
            Message::Command(Command::new(
                "onStatus",
                0.0,
                Amf0Value::Number(1.0),
                vec![],
            )),
            Message::Command(Command::new("_error", 1e300, Amf0Value::Null, vec![])),
            Message::data(vec![Amf0Value::string("@setDataFrame")]),
            Message::data(vec![]),
        ];
        for msg in bad {
            let mut buf = BytesMut::from(&encode(&msg, 0)[..]);
            while let Ok(Some(_)) = s.feed(&mut buf) {}
        }
        // A createStream reply with a garbage stream id is an error event, not a panic.
        s.play("x").unwrap();
        let reply = Message::Command(Command::new(
            "_result",
            2.0,
            Amf0Value::Null,
            vec![Amf0Value::Number(-5.0)],
        ));
        let mut buf = BytesMut::from(&encode(&reply, 0)[..]);
        assert!(matches!(
            s.feed(&mut buf).unwrap(),
            Some(ClientEvent::Error { .. })
        ));
    }

    /// What a server sends a player: control messages, a ping, statuses, audio and video
    /// (some over several chunks), an aggregate, metadata with and without @setDataFrame.
    fn player_stream() -> Vec<u8> {
        let mut enc = ChunkEncoder::new();
        let mut out = Vec::new();
        let mut put = |enc: &mut ChunkEncoder, csid: u32, type_id: u8, ts: u32, payload: &[u8]| {
            let header = MessageHeader {
                timestamp: ts,
                length: payload.len() as u32,
                type_id,
                stream_id: 1,
            };
            enc.encode_into(csid, &header, payload, &mut out);
        };
        let msg = |m: Message| (m.type_id(), m.encode_payload());
        let status = |code: &str| {
            msg(Message::Command(Command::new(
                "onStatus",
                0.0,
                Amf0Value::Null,
                vec![Amf0Value::object([
                    ("level", Amf0Value::string("status")),
                    ("code", Amf0Value::string(code)),
                ])],
            )))
        };
        let (t, p) = msg(Message::WindowAckSize(700));
        put(&mut enc, 2, t, 0, &p);
        let (t, p) = msg(Message::SetChunkSize(100));
        put(&mut enc, 2, t, 0, &p);
        enc.set_chunk_size(100);
        let (t, p) = status("NetStream.Play.Start");
        put(&mut enc, 5, t, 0, &p);
        let mut plain = Vec::new();
        Amf0Value::string("onMetaData").encode(&mut plain);
        Amf0Value::object([("width", Amf0Value::Number(640.0))]).encode(&mut plain);
        let mut framed = Vec::new();
        Amf0Value::string("@setDataFrame").encode(&mut framed);
        framed.extend_from_slice(&plain);
        put(&mut enc, 5, msg_type::DATA_AMF0, 0, &framed);
        put(&mut enc, 5, msg_type::DATA_AMF0, 0, &plain);
        let (t, p) = msg(Message::data(vec![Amf0Value::string("|RtmpSampleAccess")]));
        put(&mut enc, 5, t, 0, &p);
        for i in 0..40u32 {
            let audio: Vec<u8> = (0..30 + i).map(|b| (b ^ i) as u8).collect();
            put(&mut enc, 4, msg_type::AUDIO, i * 23, &audio);
            let video: Vec<u8> = (0..(40 + i * 37) % 450).map(|b| (b + i) as u8).collect();
            put(&mut enc, 6, msg_type::VIDEO, i * 40, &video);
            if i % 10 == 3 {
                let (t, p) = msg(Message::UserControl(UserControl::PingRequest(i)));
                put(&mut enc, 2, t, 0, &p);
            }
            if i % 10 == 7 {
                // Two FLV tags: audio then video.
                let mut agg = Vec::new();
                for (type_id, data) in [(8u8, &[0xAF, 1, 2][..]), (9, &[0x27, 1, 0, 0, 0, 9][..])] {
                    agg.push(type_id);
                    agg.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                    agg.extend_from_slice(&[0, 0, 5, 0, 0, 0, 0]);
                    agg.extend_from_slice(data);
                    agg.extend_from_slice(&(11 + data.len() as u32).to_be_bytes());
                }
                put(&mut enc, 6, msg_type::AGGREGATE, i * 40, &agg);
            }
        }
        let (t, p) = status("NetStream.Play.UnpublishNotify");
        put(&mut enc, 5, t, 0, &p);
        out
    }

    #[derive(Debug, PartialEq)]
    enum Seen {
        Media(MediaKind, u32, Vec<u8>),
        Event(ClientEvent),
    }

    #[test]
    fn feed_with_sees_what_feed_sees() {
        let input = player_stream();
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for max_piece in [1usize, 7, 100, 1000, usize::MAX] {
            let (mut a, mut b) = (connected(), connected());
            let (mut buf_a, mut buf_b) = (BytesMut::new(), BytesMut::new());
            let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
            let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
            let mut pos = 0;
            while pos < input.len() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let n = (1 + (rng % max_piece.min(1 << 20) as u64) as usize).min(input.len() - pos);
                buf_a.extend_from_slice(&input[pos..pos + n]);
                buf_b.extend_from_slice(&input[pos..pos + n]);
                pos += n;
                while let Some(ev) = a.feed(&mut buf_a).unwrap() {
                    seen_a.push(match ev {
                        ClientEvent::Media(m) => {
                            Seen::Media(m.kind, m.timestamp, m.payload.to_vec())
                        }
                        ev => Seen::Event(ev),
                    });
                }
                loop {
                    let mut media = |m: MediaRef<'_>| {
                        seen_b.push(Seen::Media(m.kind, m.timestamp, m.payload.to_vec()))
                    };
                    let Some(ev) = b.feed_with(&mut buf_b, &mut media).unwrap() else {
                        break;
                    };
                    assert!(
                        !matches!(ev, ClientEvent::Media(_)),
                        "media goes to the callback"
                    );
                    seen_b.push(Seen::Event(ev));
                }
                out_a.extend(a.take_output().unwrap_or_default());
                out_b.extend(b.take_output().unwrap_or_default());
                assert_eq!(buf_a.len(), buf_b.len());
            }
            assert_eq!(seen_a, seen_b, "pieces up to {max_piece}");
            assert_eq!(out_a, out_b, "acks and pongs");
            assert_eq!((a.bytes_in(), a.acks_sent()), (b.bytes_in(), b.acks_sent()));
            assert!(a.acks_sent() > 3);
            let media = seen_a.iter().filter(|s| matches!(s, Seen::Media(..)));
            assert_eq!(media.count(), 2 + 40 * 2 + 4 * 2);
            assert!(
                matches!(seen_a.last(), Some(Seen::Event(ClientEvent::Status(s))) if s.ends_playback())
            );
        }
    }

    #[test]
    fn amf_string_prefix() {
        assert!(starts_with_string(b"\x02\x00\x02ab..", "ab"));
        assert!(!starts_with_string(b"\x02\x00\x02a", "ab"));
        assert!(!starts_with_string(b"", "ab"));
    }
}
