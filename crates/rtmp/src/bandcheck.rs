//! SRS's RTMP bandwidth test ("bandcheck"), sans-IO: the messages both ends exchange and
//! the arithmetic of its rate limit and results. No socket, no clock: the caller says how
//! many bytes went and how long it took.
//!
//! The exchange, as SRS's `srs_app_bandwidth.cpp` (server) and `srs_lib_bandwidth.cpp`
//! (client, behind `srs_bandwidth_check`) run it after `connect`:
//!
//! ```text
//! server                                   client
//! onSrsBandCheckStartPlayBytes   ──▶       (limit_kbps, duration_ms, interval_ms)
//!                                ◀──       onSrsBandCheckStartingPlayBytes
//! onSrsBandCheckPlaying ...      ──▶       (filler, for duration_ms, at most limit_kbps)
//! onSrsBandCheckStopPlayBytes    ──▶       (duration_ms, interval_ms, duration_delta, bytes_delta)
//!                                ◀──       onSrsBandCheckStoppedPlayBytes
//! onSrsBandCheckStartPublishBytes──▶       (limit_kbps, duration_ms, interval_ms)
//!                                ◀──       onSrsBandCheckStartingPublishBytes
//!                                ◀──       onSrsBandCheckPublishing ... (filler)
//!                                ◀──       onSrsBandCheckStopPublishBytes (client is done)
//! onSrsBandCheckStopPublishBytes ──▶
//!                                ◀──       onSrsBandCheckStoppedPublishBytes
//! onSrsBandCheckFinished         ──▶       (start_time, end_time, play_kbps, publish_kbps,
//!                                           play_bytes, publish_bytes, play_time, publish_time)
//!                                ◀──       finalClientPacket
//! ```
//!
//! Every packet is an AMF0 command (message type 20) on chunk stream 5, message stream 0:
//! the name, transaction id 0, a null command object and one object of data (SRS's
//! `SrsBandwidthPacket`).

use amf::Amf0Value;

use crate::message::{Command, Message};

/// Chunk stream SRS sends these packets on (`RTMP_CID_OverStream`).
pub const CSID: u32 = 5;

/// How long each direction is measured, as SRS (`_SRS_BANDWIDTH_SAMPLE_DURATION_MS`).
pub const SAMPLE_DURATION_MS: u64 = 3_000;
/// SRS's `interval_ms` in the start packets (0: no pause between data packets).
pub const SAMPLE_INTERVAL_MS: u64 = 0;
/// The filler string of SRS's play packets (`onSrsBandCheckPlaying`).
pub const PLAY_FILLER: &str = "SRS band check data from server's playing......";
/// The filler string of SRS's client publish packets (`onSrsBandCheckPublishing`).
pub const PUBLISH_FILLER: &str = "SRS band check data from server's publishing......";
/// SRS grows each data packet by two filler entries; past this many a packet stops
/// growing (under 64 KiB, the largest command a server takes before a publish), so that
/// a long or fast test never builds huge messages.
pub const MAX_FILLER_ENTRIES: usize = 1_000;
/// Most data properties read from a received packet: the peer's filler is counted in
/// bytes, not kept.
const MAX_KEPT_PROPERTIES: usize = 16;

/// One step of the exchange: the packet's command name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    StartPlay,
    StartingPlay,
    Playing,
    StopPlay,
    StoppedPlay,
    StartPublish,
    StartingPublish,
    Publishing,
    StopPublish,
    StoppedPublish,
    Finished,
    Final,
}

impl Step {
    pub const ALL: [Step; 12] = [
        Step::StartPlay,
        Step::StartingPlay,
        Step::Playing,
        Step::StopPlay,
        Step::StoppedPlay,
        Step::StartPublish,
        Step::StartingPublish,
        Step::Publishing,
        Step::StopPublish,
        Step::StoppedPublish,
        Step::Finished,
        Step::Final,
    ];

    /// The command name, exactly as SRS's `srs_rtmp_stack.cpp` defines it.
    pub fn name(self) -> &'static str {
        match self {
            Step::StartPlay => "onSrsBandCheckStartPlayBytes",
            Step::StartingPlay => "onSrsBandCheckStartingPlayBytes",
            Step::Playing => "onSrsBandCheckPlaying",
            Step::StopPlay => "onSrsBandCheckStopPlayBytes",
            Step::StoppedPlay => "onSrsBandCheckStoppedPlayBytes",
            Step::StartPublish => "onSrsBandCheckStartPublishBytes",
            Step::StartingPublish => "onSrsBandCheckStartingPublishBytes",
            Step::Publishing => "onSrsBandCheckPublishing",
            Step::StopPublish => "onSrsBandCheckStopPublishBytes",
            Step::StoppedPublish => "onSrsBandCheckStoppedPublishBytes",
            Step::Finished => "onSrsBandCheckFinished",
            Step::Final => "finalClientPacket",
        }
    }

    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One bandcheck packet: its step and its data object's properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub step: Step,
    pub data: Vec<(String, Amf0Value)>,
}

impl Packet {
    pub fn new(step: Step) -> Packet {
        Packet {
            step,
            data: Vec::new(),
        }
    }

    /// Adds a number to the data object.
    pub fn with(mut self, key: &str, value: f64) -> Packet {
        self.data.push((key.to_string(), Amf0Value::Number(value)));
        self
    }

    /// A data packet (`Playing` or `Publishing`) with `entries` filler strings named
    /// "0", "1", ... as SRS sends them (capped at [`MAX_FILLER_ENTRIES`]).
    pub fn filler(step: Step, entries: usize) -> Packet {
        let text = if step == Step::Publishing {
            PUBLISH_FILLER
        } else {
            PLAY_FILLER
        };
        Packet {
            step,
            data: (0..entries.min(MAX_FILLER_ENTRIES))
                .map(|i| (i.to_string(), Amf0Value::string(text)))
                .collect(),
        }
    }

    /// A number of the data object (SRS's `ensure_property_number`).
    pub fn number(&self, key: &str) -> Option<f64> {
        self.data
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_number())
    }

    /// The message to send (on [`CSID`], message stream 0).
    pub fn to_message(&self) -> Message {
        Message::Command(Command::new(
            self.step.name(),
            0.0,
            Amf0Value::Null,
            vec![Amf0Value::Object(self.data.clone())],
        ))
    }

    /// The packet a received command is, if it is one of the exchange's. Only a few
    /// numeric properties are kept: data packets are filler.
    pub fn from_command(cmd: &Command) -> Option<Packet> {
        let step = Step::from_name(&cmd.name)?;
        let data = cmd
            .args
            .first()
            .and_then(|v| v.properties())
            .map(|props| {
                props
                    .iter()
                    .filter(|(_, v)| v.as_number().is_some())
                    .take(MAX_KEPT_PROPERTIES)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Some(Packet { step, data })
    }
}

/// What the start packets announce (`limit_kbps`, `duration_ms`, `interval_ms`).
pub fn start(step: Step, limit_kbps: u32, duration_ms: u64) -> Packet {
    Packet::new(step)
        .with("limit_kbps", f64::from(limit_kbps))
        .with("duration_ms", duration_ms as f64)
        .with("interval_ms", SAMPLE_INTERVAL_MS as f64)
}

/// What the stop packets report (`duration_delta`, `bytes_delta`: the sample measured).
pub fn stop(step: Step, duration_ms: u64, sample: &Sample) -> Packet {
    Packet::new(step)
        .with("duration_ms", duration_ms as f64)
        .with("interval_ms", SAMPLE_INTERVAL_MS as f64)
        .with("duration_delta", sample.duration_ms as f64)
        .with("bytes_delta", sample.bytes as f64)
}

/// One direction measured: bytes over milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub bytes: u64,
    pub duration_ms: u64,
}

impl Sample {
    /// kbit/s as SRS computes it (`bytes * 8 / ms`), 0 for an empty sample.
    pub fn kbps(&self) -> u64 {
        // Widened: the figures may come from a peer's report.
        (u128::from(self.bytes) * 8)
            .checked_div(u128::from(self.duration_ms))
            .map_or(0, |k| u64::try_from(k).unwrap_or(u64::MAX))
    }
}

/// How long to wait before sending (or reading) more so that `bytes` over `elapsed_ms`
/// stays at or under `limit_kbps` (SRS's `SrsKbpsLimit`, which sleeps while over the
/// limit). Zero when under it.
pub fn pause_ms(bytes: u64, elapsed_ms: u64, limit_kbps: u32) -> u64 {
    if limit_kbps == 0 {
        return 0;
    }
    // At limit_kbps, `bytes` take bytes * 8 / limit_kbps milliseconds.
    let due_ms = bytes.saturating_mul(8) / u64::from(limit_kbps);
    due_ms.saturating_sub(elapsed_ms)
}

/// The final report (`onSrsBandCheckFinished`); times are Unix milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Report {
    pub start_time: u64,
    pub end_time: u64,
    pub play: Sample,
    pub publish: Sample,
}

impl Report {
    pub fn to_packet(&self) -> Packet {
        Packet::new(Step::Finished)
            .with("start_time", self.start_time as f64)
            .with("end_time", self.end_time as f64)
            .with("play_kbps", self.play.kbps() as f64)
            .with("publish_kbps", self.publish.kbps() as f64)
            .with("play_bytes", self.play.bytes as f64)
            .with("publish_bytes", self.publish.bytes as f64)
            .with("play_time", self.play.duration_ms as f64)
            .with("publish_time", self.publish.duration_ms as f64)
    }

    /// Reads a report from a `Finished` packet; missing or odd fields are 0.
    pub fn from_packet(p: &Packet) -> Report {
        let n = |k: &str| {
            p.number(k)
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map_or(0, |v| v.min(u64::MAX as f64) as u64)
        };
        Report {
            start_time: n("start_time"),
            end_time: n("end_time"),
            play: Sample {
                bytes: n("play_bytes"),
                duration_ms: n("play_time"),
            },
            publish: Sample {
                bytes: n("publish_bytes"),
                duration_ms: n("publish_time"),
            },
        }
    }

    /// `play_kbps` and `publish_kbps` as sent (they can differ from bytes/time when the
    /// server rounds otherwise).
    pub fn kbps(p: &Packet) -> (u64, u64) {
        let k = |key: &str| {
            p.number(key)
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map_or(0, |v| v as u64)
        };
        (k("play_kbps"), k("publish_kbps"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::msg_type;

    fn payload(m: &Message) -> Vec<u8> {
        assert_eq!(m.type_id(), msg_type::COMMAND_AMF0);
        m.encode_payload().to_vec()
    }

    /// The names, byte for byte as SRS's srs_rtmp_stack.cpp defines them.
    #[test]
    fn names_are_srs_names() {
        let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "onSrsBandCheckStartPlayBytes",
                "onSrsBandCheckStartingPlayBytes",
                "onSrsBandCheckPlaying",
                "onSrsBandCheckStopPlayBytes",
                "onSrsBandCheckStoppedPlayBytes",
                "onSrsBandCheckStartPublishBytes",
                "onSrsBandCheckStartingPublishBytes",
                "onSrsBandCheckPublishing",
                "onSrsBandCheckStopPublishBytes",
                "onSrsBandCheckStoppedPublishBytes",
                "onSrsBandCheckFinished",
                "finalClientPacket",
            ]
        );
        for s in Step::ALL {
            assert_eq!(Step::from_name(s.name()), Some(s));
        }
        assert_eq!(Step::from_name("onSrsBandCheck"), None);
    }

    /// SrsBandwidthPacket::encode_packet: string name, number 0, null, object.
    #[test]
    fn start_play_bytes_are_srs_bytes() {
        let m = start(Step::StartPlay, 4000, 3000).to_message();
        let mut want = Vec::new();
        // "onSrsBandCheckStartPlayBytes"
        want.extend_from_slice(&[0x02, 0x00, 28]);
        want.extend_from_slice(b"onSrsBandCheckStartPlayBytes");
        // transaction id 0
        want.push(0x00);
        want.extend_from_slice(&0f64.to_be_bytes());
        // null command object
        want.push(0x05);
        // { limit_kbps: 4000, duration_ms: 3000, interval_ms: 0 }
        want.push(0x03);
        for (k, v) in [
            ("limit_kbps", 4000f64),
            ("duration_ms", 3000.0),
            ("interval_ms", 0.0),
        ] {
            want.extend_from_slice(&(k.len() as u16).to_be_bytes());
            want.extend_from_slice(k.as_bytes());
            want.push(0x00);
            want.extend_from_slice(&v.to_be_bytes());
        }
        want.extend_from_slice(&[0x00, 0x00, 0x09]);
        assert_eq!(payload(&m), want);
    }

    /// A client's reply as SRS's librtmp sends it (`create_starting_play`: name, 0,
    /// null, empty object) is recognised.
    #[test]
    fn srs_client_reply_parses() {
        let mut bytes = vec![0x02, 0x00, 31];
        bytes.extend_from_slice(b"onSrsBandCheckStartingPlayBytes");
        bytes.push(0x00);
        bytes.extend_from_slice(&0f64.to_be_bytes());
        bytes.extend_from_slice(&[0x05, 0x03, 0x00, 0x00, 0x09]);
        let Message::Command(cmd) =
            Message::decode(msg_type::COMMAND_AMF0, bytes::Bytes::from(bytes)).unwrap()
        else {
            panic!("not a command");
        };
        let p = Packet::from_command(&cmd).unwrap();
        assert_eq!(p.step, Step::StartingPlay);
        assert!(p.data.is_empty());
    }

    #[test]
    fn report_round_trips_and_filler_is_bounded() {
        let r = Report {
            start_time: 1_700_000_000_000,
            end_time: 1_700_000_006_600,
            play: Sample {
                bytes: 750_000,
                duration_ms: 3_000,
            },
            publish: Sample {
                bytes: 1_500_000,
                duration_ms: 3_000,
            },
        };
        let Message::Command(cmd) = r.to_packet().to_message() else {
            panic!()
        };
        let p = Packet::from_command(&cmd).unwrap();
        assert_eq!(p.step, Step::Finished);
        assert_eq!(Report::from_packet(&p), r);
        assert_eq!(Report::kbps(&p), (2000, 4000));
        let f = Packet::filler(Step::Playing, 5);
        assert_eq!(f.data.len(), 5);
        assert_eq!(f.data[4].0, "4");
        assert_eq!(
            Packet::filler(Step::Publishing, 1_000_000).data.len(),
            MAX_FILLER_ENTRIES
        );
        let big = Packet::filler(Step::Playing, MAX_FILLER_ENTRIES)
            .to_message()
            .encode_payload();
        assert!(big.len() < 64 * 1024, "{}", big.len());
    }

    #[test]
    fn pause_holds_the_rate() {
        // 2000 kbps: 250 000 bytes take 1000 ms.
        assert_eq!(pause_ms(250_000, 400, 2000), 600);
        assert_eq!(pause_ms(250_000, 1000, 2000), 0);
        assert_eq!(pause_ms(250_000, 5000, 2000), 0);
        assert_eq!(pause_ms(u64::MAX, 0, 1), u64::MAX);
        assert_eq!(pause_ms(1000, 0, 0), 0, "no limit");
        assert_eq!(Sample::default().kbps(), 0);
        let huge = Sample {
            bytes: u64::MAX,
            duration_ms: 1,
        };
        assert_eq!(huge.kbps(), u64::MAX, "saturates, no overflow");
        assert_eq!(
            Sample {
                bytes: 1250,
                duration_ms: 10
            }
            .kbps(),
            1000
        );
    }
}
