//! RTMP message types (RTMP 1.0 spec sections 5.4, 6.2 and 7): turning a complete message payload
//! into a typed value and back. Media payloads stay `Bytes` slices of what the chunk decoder
//! produced, so audio and video are never copied here.

use amf::{Amf0Value, AmfError};
use bytes::Bytes;

use crate::chunk::MessageHeader;

/// Message type ids.
pub mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// User Control event types (spec 7.1.7).
pub mod user_control_event {
    pub const STREAM_BEGIN: u16 = 0;
    pub const STREAM_EOF: u16 = 1;
    pub const STREAM_DRY: u16 = 2;
    pub const SET_BUFFER_LENGTH: u16 = 3;
    pub const STREAM_IS_RECORDED: u16 = 4;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// Timestamps are kept to 31 bits, like the chunk decoder does.
const TIMESTAMP_MASK: u32 = 0x7FFF_FFFF;

/// FLV tag header inside an aggregate message: type, size(3), timestamp(3+1), stream id(3).
const FLV_TAG_HEADER_LEN: usize = 11;
/// The "previous tag size" trailer after each FLV tag.
const FLV_PREVIOUS_TAG_SIZE_LEN: usize = 4;

#[derive(Debug, Clone, PartialEq)]
pub enum UserControl {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength {
        stream_id: u32,
        buffer_ms: u32,
    },
    StreamIsRecorded(u32),
    PingRequest(u32),
    PingResponse(u32),
    /// Events we do not interpret (e.g. SWF verification, 26/27), kept for logging or relaying.
    Other {
        event: u16,
        data: Bytes,
    },
}

impl UserControl {
    pub fn event(&self) -> u16 {
        use user_control_event as ev;
        match self {
            UserControl::StreamBegin(_) => ev::STREAM_BEGIN,
            UserControl::StreamEof(_) => ev::STREAM_EOF,
            UserControl::StreamDry(_) => ev::STREAM_DRY,
            UserControl::SetBufferLength { .. } => ev::SET_BUFFER_LENGTH,
            UserControl::StreamIsRecorded(_) => ev::STREAM_IS_RECORDED,
            UserControl::PingRequest(_) => ev::PING_REQUEST,
            UserControl::PingResponse(_) => ev::PING_RESPONSE,
            UserControl::Other { event, .. } => *event,
        }
    }

    fn decode(payload: &[u8]) -> Result<UserControl, MessageError> {
        use user_control_event as ev;
        let event = u16::from_be_bytes(read::<2>(msg_type::USER_CONTROL, payload, 0)?);
        let u32_at = |pos| read::<4>(msg_type::USER_CONTROL, payload, pos).map(u32::from_be_bytes);
        Ok(match event {
            ev::STREAM_BEGIN => UserControl::StreamBegin(u32_at(2)?),
            ev::STREAM_EOF => UserControl::StreamEof(u32_at(2)?),
            ev::STREAM_DRY => UserControl::StreamDry(u32_at(2)?),
            ev::SET_BUFFER_LENGTH => UserControl::SetBufferLength {
                stream_id: u32_at(2)?,
                buffer_ms: u32_at(6)?,
            },
            ev::STREAM_IS_RECORDED => UserControl::StreamIsRecorded(u32_at(2)?),
            ev::PING_REQUEST => UserControl::PingRequest(u32_at(2)?),
            ev::PING_RESPONSE => UserControl::PingResponse(u32_at(2)?),
            event => UserControl::Other {
                event,
                data: Bytes::copy_from_slice(payload.get(2..).unwrap_or_default()),
            },
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.event().to_be_bytes());
        match self {
            UserControl::StreamBegin(v)
            | UserControl::StreamEof(v)
            | UserControl::StreamDry(v)
            | UserControl::StreamIsRecorded(v)
            | UserControl::PingRequest(v)
            | UserControl::PingResponse(v) => out.extend_from_slice(&v.to_be_bytes()),
            UserControl::SetBufferLength {
                stream_id,
                buffer_ms,
            } => {
                out.extend_from_slice(&stream_id.to_be_bytes());
                out.extend_from_slice(&buffer_ms.to_be_bytes());
            }
            UserControl::Other { data, .. } => out.extend_from_slice(data),
        }
    }
}

/// A command (AMF0 or AMF3 command message): name, transaction id, command object, arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub transaction_id: f64,
    /// `Null` when the peer sent none.
    pub object: Amf0Value,
    pub args: Vec<Amf0Value>,
}

impl Command {
    pub fn new(name: &str, transaction_id: f64, object: Amf0Value, args: Vec<Amf0Value>) -> Self {
        Command {
            name: name.to_owned(),
            transaction_id,
            object,
            args,
        }
    }

    /// Only the name is required: a missing transaction id reads as 0 and a missing command
    /// object as `Null`, which is what notifications like `onStatus` from minimal peers amount to.
    fn from_values(values: Vec<Amf0Value>) -> Result<Command, MessageError> {
        let mut values = values.into_iter();
        let name = match values.next() {
            Some(v) => match v.as_str() {
                Some(s) => s.to_owned(),
                None => return Err(MessageError::MissingCommandName),
            },
            None => return Err(MessageError::MissingCommandName),
        };
        let transaction_id = match values.next() {
            None => 0.0,
            Some(v) => match v.as_number() {
                Some(n) => n,
                None => return Err(MessageError::BadTransactionId { name }),
            },
        };
        let object = values.next().unwrap_or(Amf0Value::Null);
        Ok(Command {
            name,
            transaction_id,
            object,
            args: values.collect(),
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        Amf0Value::String(self.name.clone()).encode(out);
        Amf0Value::Number(self.transaction_id).encode(out);
        self.object.encode(out);
        amf::encode_all(&self.args, out);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    SetChunkSize(u32),
    Abort {
        csid: u32,
    },
    Acknowledgement {
        sequence: u32,
    },
    UserControl(UserControl),
    WindowAckSize(u32),
    SetPeerBandwidth {
        size: u32,
        limit_type: u8,
    },
    Audio(Bytes),
    Video(Bytes),
    /// Types 18 and 15 (15 has one leading 0x00 byte to skip). `payload` = the AMF0 bytes (after
    /// that byte), kept so metadata can be relayed byte for byte. When sending, a non-empty
    /// `payload` is what goes out; build with [`Message::data`] to encode `values` instead.
    Data {
        values: Vec<Amf0Value>,
        payload: Bytes,
    },
    /// Types 20 and 17 (17: skip one leading byte, then AMF0).
    Command(Command),
    Aggregate(Bytes),
    Other {
        type_id: u8,
        payload: Bytes,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message type {type_id} too short: needs {need} bytes, got {got}")]
    Truncated {
        type_id: u8,
        need: usize,
        got: usize,
    },
    #[error("bad AMF0 in message type {type_id}: {source}")]
    Amf {
        type_id: u8,
        #[source]
        source: AmfError,
    },
    #[error("command message does not start with a command name string")]
    MissingCommandName,
    #[error("command {name}: transaction id is not a number")]
    BadTransactionId { name: String },
    #[error("aggregate message: {reason} at byte {offset}")]
    BadAggregate { offset: usize, reason: &'static str },
}

/// Reads `N` bytes at `pos` of a payload of message type `type_id`.
fn read<const N: usize>(type_id: u8, payload: &[u8], pos: usize) -> Result<[u8; N], MessageError> {
    pos.checked_add(N)
        .and_then(|end| payload.get(pos..end))
        .and_then(|b| b.try_into().ok())
        .ok_or(MessageError::Truncated {
            type_id,
            need: pos.saturating_add(N),
            got: payload.len(),
        })
}

fn read_u32(type_id: u8, payload: &[u8]) -> Result<u32, MessageError> {
    read::<4>(type_id, payload, 0).map(u32::from_be_bytes)
}

/// Skips the one byte AMF3-typed command/data messages put before their AMF0 body.
fn skip_amf3_prefix(type_id: u8, payload: Bytes) -> Result<Bytes, MessageError> {
    if payload.is_empty() {
        return Err(MessageError::Truncated {
            type_id,
            need: 1,
            got: 0,
        });
    }
    Ok(payload.slice(1..))
}

fn decode_amf(type_id: u8, payload: &[u8]) -> Result<Vec<Amf0Value>, MessageError> {
    amf::decode_all(payload).map_err(|source| MessageError::Amf { type_id, source })
}

impl Message {
    /// Interprets a complete message payload. Unknown types become [`Message::Other`].
    pub fn decode(type_id: u8, payload: Bytes) -> Result<Message, MessageError> {
        use msg_type as t;
        Ok(match type_id {
            t::SET_CHUNK_SIZE => Message::SetChunkSize(read_u32(type_id, &payload)?),
            t::ABORT => Message::Abort {
                csid: read_u32(type_id, &payload)?,
            },
            t::ACKNOWLEDGEMENT => Message::Acknowledgement {
                sequence: read_u32(type_id, &payload)?,
            },
            t::USER_CONTROL => Message::UserControl(UserControl::decode(&payload)?),
            t::WINDOW_ACK_SIZE => Message::WindowAckSize(read_u32(type_id, &payload)?),
            t::SET_PEER_BANDWIDTH => {
                let [a, b, c, d, limit_type] = read::<5>(type_id, &payload, 0)?;
                Message::SetPeerBandwidth {
                    size: u32::from_be_bytes([a, b, c, d]),
                    limit_type,
                }
            }
            t::AUDIO => Message::Audio(payload),
            t::VIDEO => Message::Video(payload),
            t::DATA_AMF0 | t::DATA_AMF3 => {
                let payload = if type_id == t::DATA_AMF3 {
                    skip_amf3_prefix(type_id, payload)?
                } else {
                    payload
                };
                Message::Data {
                    values: decode_amf(type_id, &payload)?,
                    payload,
                }
            }
            t::COMMAND_AMF0 | t::COMMAND_AMF3 => {
                let payload = if type_id == t::COMMAND_AMF3 {
                    skip_amf3_prefix(type_id, payload)?
                } else {
                    payload
                };
                Message::Command(Command::from_values(decode_amf(type_id, &payload)?)?)
            }
            t::AGGREGATE => Message::Aggregate(payload),
            type_id => Message::Other { type_id, payload },
        })
    }

    /// A data message whose payload is encoded from `values`.
    pub fn data(values: Vec<Amf0Value>) -> Message {
        let mut out = Vec::new();
        amf::encode_all(&values, &mut out);
        Message::Data {
            values,
            payload: Bytes::from(out),
        }
    }

    pub fn type_id(&self) -> u8 {
        use msg_type as t;
        match self {
            Message::SetChunkSize(_) => t::SET_CHUNK_SIZE,
            Message::Abort { .. } => t::ABORT,
            Message::Acknowledgement { .. } => t::ACKNOWLEDGEMENT,
            Message::UserControl(_) => t::USER_CONTROL,
            Message::WindowAckSize(_) => t::WINDOW_ACK_SIZE,
            Message::SetPeerBandwidth { .. } => t::SET_PEER_BANDWIDTH,
            Message::Audio(_) => t::AUDIO,
            Message::Video(_) => t::VIDEO,
            Message::Data { .. } => t::DATA_AMF0,
            Message::Command(_) => t::COMMAND_AMF0,
            Message::Aggregate(_) => t::AGGREGATE,
            Message::Other { type_id, .. } => *type_id,
        }
    }

    /// Payload bytes for sending (Command/Data always encoded as AMF0 types 20/18).
    pub fn encode_payload(&self) -> Bytes {
        let u32_payload = |v: u32| Bytes::copy_from_slice(&v.to_be_bytes());
        match self {
            Message::SetChunkSize(v) | Message::WindowAckSize(v) => u32_payload(*v),
            Message::Abort { csid } => u32_payload(*csid),
            Message::Acknowledgement { sequence } => u32_payload(*sequence),
            Message::SetPeerBandwidth { size, limit_type } => {
                let mut out = Vec::with_capacity(5);
                out.extend_from_slice(&size.to_be_bytes());
                out.push(*limit_type);
                Bytes::from(out)
            }
            Message::UserControl(uc) => {
                let mut out = Vec::with_capacity(10);
                uc.encode(&mut out);
                Bytes::from(out)
            }
            Message::Audio(p) | Message::Video(p) | Message::Aggregate(p) => p.clone(),
            Message::Other { payload, .. } => payload.clone(),
            Message::Data { values, payload } => {
                if payload.is_empty() {
                    let mut out = Vec::new();
                    amf::encode_all(values, &mut out);
                    Bytes::from(out)
                } else {
                    payload.clone()
                }
            }
            Message::Command(cmd) => {
                let mut out = Vec::with_capacity(128);
                cmd.encode(&mut out);
                Bytes::from(out)
            }
        }
    }
}

/// Splits an aggregate message (a run of FLV tags: 11-byte tag header, data, 4-byte previous tag
/// size) into its sub-messages, zero copy. Sub-message timestamp = aggregate timestamp + (tag
/// timestamp - first tag timestamp), as SRS does: the tags carry the publisher's own clock, the
/// aggregate header the one the rest of the stream uses. The stream id is the aggregate's. A
/// missing previous-tag-size after the last tag is tolerated.
pub fn split_aggregate(
    header: &MessageHeader,
    payload: &Bytes,
) -> Result<Vec<(MessageHeader, Bytes)>, MessageError> {
    let mut out = Vec::new();
    let mut first_ts: Option<u32> = None;
    let mut pos = 0usize;
    while pos < payload.len() {
        let tag: [u8; FLV_TAG_HEADER_LEN] = pos
            .checked_add(FLV_TAG_HEADER_LEN)
            .and_then(|end| payload.get(pos..end))
            .and_then(|b| b.try_into().ok())
            .ok_or(MessageError::BadAggregate {
                offset: pos,
                reason: "truncated tag header",
            })?;
        let [type_id, s0, s1, s2, t0, t1, t2, t3, ..] = tag;
        let size = u32::from_be_bytes([0, s0, s1, s2]);
        let ts = u32::from_be_bytes([t3, t0, t1, t2]) & TIMESTAMP_MASK;
        let start = pos + FLV_TAG_HEADER_LEN;
        let end = usize::try_from(size)
            .ok()
            .and_then(|n| start.checked_add(n))
            .filter(|&end| end <= payload.len())
            .ok_or(MessageError::BadAggregate {
                offset: pos,
                reason: "tag data runs past the end",
            })?;
        let first = *first_ts.get_or_insert(ts);
        let timestamp = header.timestamp.wrapping_add(ts.wrapping_sub(first)) & TIMESTAMP_MASK;
        out.push((
            MessageHeader {
                timestamp,
                length: size,
                type_id,
                stream_id: header.stream_id,
            },
            payload.slice(start..end),
        ));
        pos = end;
        let rest = payload.len() - pos;
        if rest == 0 {
            break;
        }
        if rest < FLV_PREVIOUS_TAG_SIZE_LEN {
            return Err(MessageError::BadAggregate {
                offset: pos,
                reason: "truncated previous tag size",
            });
        }
        pos += FLV_PREVIOUS_TAG_SIZE_LEN;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{ChunkDecoder, DecoderLimits};
    use bytes::BytesMut;
    use serde_json::Value;

    const VECTORS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/vectors.json"
    ));

    fn vector(name: &str) -> Value {
        let all: Value = serde_json::from_str(VECTORS).unwrap();
        all["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no vector {name}"))
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The conformance README's JSON form of AMF0 values.
    fn amf_from_json(v: &Value) -> Amf0Value {
        let props = |p: &Value| {
            p.as_array()
                .unwrap()
                .iter()
                .map(|kv| (kv[0].as_str().unwrap().to_owned(), amf_from_json(&kv[1])))
                .collect()
        };
        match v {
            Value::Null => Amf0Value::Null,
            Value::Bool(b) => Amf0Value::Boolean(*b),
            Value::String(s) => Amf0Value::String(s.clone()),
            Value::Object(o) if o.contains_key("number") => {
                Amf0Value::Number(o["number"].as_f64().unwrap())
            }
            Value::Object(o) if o.contains_key("undefined") => Amf0Value::Undefined,
            Value::Object(o) if o.contains_key("object") => Amf0Value::Object(props(&o["object"])),
            Value::Object(o) if o.contains_key("ecma_array") => {
                Amf0Value::EcmaArray(props(&o["ecma_array"]))
            }
            other => panic!("unhandled AMF JSON {other}"),
        }
    }

    /// Decodes one chunked message from a vector's input.
    fn message_of(name: &str) -> (Value, Message, Bytes) {
        let v = vector(name);
        let input = unhex(v["input_hex"].as_str().unwrap());
        let mut dec = ChunkDecoder::new(DecoderLimits::default());
        let raw = dec
            .decode(&mut BytesMut::from(&input[..]))
            .unwrap()
            .unwrap();
        let msg = Message::decode(raw.header.type_id, raw.payload.clone()).unwrap();
        assert_eq!(msg.type_id(), raw.header.type_id, "{name}");
        assert_eq!(msg.encode_payload(), raw.payload, "{name}: re-encoding");
        (v, msg, raw.payload)
    }

    #[test]
    fn control_message_vectors() {
        let cases = [
            ("enc_set_chunk_size_1024", Message::SetChunkSize(1024)),
            (
                "enc_window_ack_size_102400",
                Message::WindowAckSize(102_400),
            ),
            (
                "enc_acknowledgement_1024",
                Message::Acknowledgement { sequence: 1024 },
            ),
            (
                "enc_set_peer_bandwidth_soft",
                Message::SetPeerBandwidth {
                    size: 1024,
                    limit_type: 1,
                },
            ),
            (
                "enc_user_control_set_buffer_length",
                Message::UserControl(UserControl::SetBufferLength {
                    stream_id: 1,
                    buffer_ms: 0x10,
                }),
            ),
            ("chunk_window_ack_size", Message::WindowAckSize(0x763)),
            (
                "chunk_ping_fresh_fmt1",
                Message::UserControl(UserControl::PingRequest(0x0d0f)),
            ),
        ];
        for (name, expected) in cases {
            let (_, msg, _) = message_of(name);
            assert_eq!(msg, expected, "{name}");
        }
    }

    #[test]
    fn command_and_data_vectors() {
        for name in [
            "enc_publish_live",
            "enc_play_result",
            "enc_on_status_call",
            "enc_on_metadata",
            "chunk_connect_command_3_chunks",
        ] {
            let (v, msg, _) = message_of(name);
            let e = &v["expected"];
            let amf = e
                .get("amf0")
                .or_else(|| e["messages"][0].get("amf0"))
                .unwrap();
            let values: Vec<Amf0Value> =
                amf.as_array().unwrap().iter().map(amf_from_json).collect();
            match msg {
                Message::Command(cmd) => {
                    assert_eq!(Amf0Value::String(cmd.name.clone()), values[0], "{name}");
                    assert_eq!(Amf0Value::Number(cmd.transaction_id), values[1], "{name}");
                    assert_eq!(cmd.object, values[2], "{name}");
                    assert_eq!(cmd.args, values[3..], "{name}");
                }
                Message::Data { values: got, .. } => assert_eq!(got, values, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        let (_, msg, _) = message_of("chunk_connect_command_3_chunks");
        let Message::Command(cmd) = msg else { panic!() };
        assert_eq!(cmd.name, "connect");
        assert_eq!(
            cmd.object.get("app").and_then(Amf0Value::as_str),
            Some("live")
        );
    }

    #[test]
    fn built_command_matches_vector_bytes() {
        let cmd = Command::new(
            "publish",
            0.0,
            Amf0Value::Null,
            vec![Amf0Value::string("livestream"), Amf0Value::string("live")],
        );
        let v = vector("enc_publish_live");
        let payload = Message::Command(cmd).encode_payload();
        assert_eq!(
            payload[..],
            unhex(v["expected"]["payload_hex"].as_str().unwrap())[..]
        );
        let data = Message::data(vec![
            Amf0Value::string("onMetaData"),
            Amf0Value::object([("width", 1024.0.into()), ("height", 576.0.into())]),
        ]);
        let v = vector("enc_on_metadata");
        assert_eq!(
            data.encode_payload()[..],
            unhex(v["expected"]["payload_hex"].as_str().unwrap())[..]
        );
    }

    #[test]
    fn amf3_typed_command_and_data_skip_one_byte() {
        let v = vector("enc_publish_live");
        let amf0 = unhex(v["expected"]["payload_hex"].as_str().unwrap());
        let mut amf3 = vec![0u8];
        amf3.extend_from_slice(&amf0);
        let msg = Message::decode(msg_type::COMMAND_AMF3, Bytes::from(amf3)).unwrap();
        assert_eq!(
            msg,
            Message::decode(msg_type::COMMAND_AMF0, Bytes::from(amf0.clone())).unwrap()
        );
        assert_eq!(msg.type_id(), msg_type::COMMAND_AMF0);
        assert_eq!(msg.encode_payload()[..], amf0[..]);

        let v = vector("enc_on_metadata");
        let amf0 = unhex(v["expected"]["payload_hex"].as_str().unwrap());
        let mut amf3 = vec![0u8];
        amf3.extend_from_slice(&amf0);
        let msg = Message::decode(msg_type::DATA_AMF3, Bytes::from(amf3)).unwrap();
        let Message::Data { payload, values } = &msg else {
            panic!()
        };
        assert_eq!(payload[..], amf0[..]);
        assert_eq!(values[0].as_str(), Some("onMetaData"));
        assert!(Message::decode(msg_type::DATA_AMF3, Bytes::new()).is_err());
        assert!(Message::decode(msg_type::COMMAND_AMF3, Bytes::new()).is_err());
    }

    #[test]
    fn round_trip_every_variant() {
        let messages = vec![
            Message::SetChunkSize(4096),
            Message::Abort { csid: 7 },
            Message::Acknowledgement { sequence: 99 },
            Message::WindowAckSize(2_500_000),
            Message::SetPeerBandwidth {
                size: 2_500_000,
                limit_type: 2,
            },
            Message::UserControl(UserControl::StreamBegin(1)),
            Message::UserControl(UserControl::StreamEof(1)),
            Message::UserControl(UserControl::StreamDry(1)),
            Message::UserControl(UserControl::StreamIsRecorded(1)),
            Message::UserControl(UserControl::PingRequest(12345)),
            Message::UserControl(UserControl::PingResponse(12345)),
            Message::UserControl(UserControl::Other {
                event: 26,
                data: Bytes::from_static(&[1, 2]),
            }),
            Message::Audio(Bytes::from_static(&[0xAF, 1, 2])),
            Message::Video(Bytes::from_static(&[0x17, 1, 2])),
            Message::Aggregate(Bytes::new()),
            Message::Other {
                type_id: 19,
                payload: Bytes::from_static(b"so"),
            },
            Message::Command(Command::new(
                "connect",
                1.0,
                Amf0Value::object([("app", Amf0Value::string("live"))]),
                vec![],
            )),
            Message::Command(Command::new(
                "deleteStream",
                4.0,
                Amf0Value::Null,
                vec![1.0.into()],
            )),
            Message::data(vec![
                Amf0Value::string("|RtmpSampleAccess"),
                true.into(),
                true.into(),
            ]),
        ];
        for m in messages {
            let back = Message::decode(m.type_id(), m.encode_payload()).unwrap();
            assert_eq!(back, m);
        }
    }

    #[test]
    fn short_commands_are_lenient_but_need_a_name() {
        let mut p = Vec::new();
        Amf0Value::string("onBWDone").encode(&mut p);
        let Message::Command(cmd) = Message::decode(20, Bytes::from(p.clone())).unwrap() else {
            panic!()
        };
        assert_eq!((cmd.transaction_id, &cmd.object), (0.0, &Amf0Value::Null));

        Amf0Value::string("not a number").encode(&mut p);
        assert!(matches!(
            Message::decode(20, Bytes::from(p)),
            Err(MessageError::BadTransactionId { .. })
        ));
        assert!(matches!(
            Message::decode(20, Bytes::new()),
            Err(MessageError::MissingCommandName)
        ));
        assert!(matches!(
            Message::decode(20, Bytes::from(Amf0Value::Null.to_bytes())),
            Err(MessageError::MissingCommandName)
        ));
        assert!(matches!(
            Message::decode(20, Bytes::from_static(&[0x02, 0x00])),
            Err(MessageError::Amf { type_id: 20, .. })
        ));
    }

    #[test]
    fn truncated_control_messages_are_errors() {
        for (type_id, payload) in [
            (1u8, &[0u8, 0, 4][..]),
            (2, &[]),
            (3, &[1]),
            (4, &[0]),
            (4, &[0, 0, 0, 0, 1]),
            (4, &[0, 3, 0, 0, 0, 1, 0, 0, 0]),
            (5, &[0, 0]),
            (6, &[0, 0, 4, 0]),
        ] {
            let res = Message::decode(type_id, Bytes::copy_from_slice(payload));
            assert!(
                matches!(res, Err(MessageError::Truncated { .. })),
                "type {type_id} {payload:?}: {res:?}"
            );
        }
    }

    #[test]
    fn random_payloads_never_panic() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..50_000 {
            let type_id = (next() % 24) as u8;
            let len = (next() % 40) as usize;
            let payload: Bytes = (0..len).map(|_| next() as u8).collect();
            let _ = Message::decode(type_id, payload.clone());
            let header = MessageHeader {
                timestamp: next() as u32,
                length: len as u32,
                type_id: 22,
                stream_id: 1,
            };
            let _ = split_aggregate(&header, &payload);
        }
    }

    fn flv_tag(out: &mut Vec<u8>, type_id: u8, ts: u32, data: &[u8]) {
        out.push(type_id);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.push((ts >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(data);
        out.extend_from_slice(&(11 + data.len() as u32).to_be_bytes());
    }

    #[test]
    fn aggregate_split_rebases_timestamps_zero_copy() {
        let mut agg = Vec::new();
        flv_tag(&mut agg, 9, 0x0100_0000, &[0x17, 0, 0, 0, 0]);
        flv_tag(&mut agg, 8, 0x0100_0015, &[0xAF, 1, 0x21]);
        flv_tag(&mut agg, 9, 0x0100_0028, &[0x27, 1]);
        flv_tag(&mut agg, 9, 0x0100_0030, &[]);
        let payload = Bytes::from(agg);
        let header = MessageHeader {
            timestamp: 1000,
            length: payload.len() as u32,
            type_id: msg_type::AGGREGATE,
            stream_id: 1,
        };
        let subs = split_aggregate(&header, &payload).unwrap();
        let got: Vec<(u32, u8, u32, u32, &[u8])> = subs
            .iter()
            .map(|(h, p)| (h.timestamp, h.type_id, h.length, h.stream_id, &p[..]))
            .collect();
        assert_eq!(
            got,
            vec![
                (1000, 9, 5, 1, &[0x17, 0, 0, 0, 0][..]),
                (1021, 8, 3, 1, &[0xAF, 1, 0x21][..]),
                (1040, 9, 2, 1, &[0x27, 1][..]),
                (1048, 9, 0, 1, &[][..]),
            ]
        );
        // Sub-payloads point into the aggregate's buffer.
        assert_eq!(subs[0].1.as_ptr(), payload[11..].as_ptr());

        // Without the last previous-tag-size: tolerated.
        let cut = payload.slice(..payload.len() - 4);
        assert_eq!(split_aggregate(&header, &cut).unwrap().len(), 4);
        // Partial trailer, tag header or data: errors.
        for end in [payload.len() - 2, 30, 5, 12] {
            assert!(
                matches!(
                    split_aggregate(&header, &payload.slice(..end)),
                    Err(MessageError::BadAggregate { .. })
                ),
                "cut at {end}"
            );
        }
        assert!(split_aggregate(&header, &Bytes::new()).unwrap().is_empty());
    }

    #[test]
    fn aggregate_with_tag_clock_behind_message_clock() {
        let mut agg = Vec::new();
        flv_tag(&mut agg, 8, 5000, &[0xAF]);
        flv_tag(&mut agg, 8, 5023, &[0xAF]);
        let header = MessageHeader {
            timestamp: 20,
            length: agg.len() as u32,
            type_id: msg_type::AGGREGATE,
            stream_id: 3,
        };
        let subs = split_aggregate(&header, &Bytes::from(agg)).unwrap();
        assert_eq!(subs[0].0.timestamp, 20);
        assert_eq!(subs[1].0.timestamp, 43);
    }
}
