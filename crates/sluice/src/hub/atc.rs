//! SRS's ATC (absolute time): a stream whose publisher's timestamps are a shared clock
//! (an encoder feeding several origins) reaches players and HLS untouched, so that the
//! origins stay interchangeable behind a proxy: same timestamps to RTMP and HTTP-FLV
//! players, same HLS segment boundaries and names (see `hls::segmenter::AtcSlots`).
//!
//! The policy comes from the vhost (`atc`, `atc_auto`); with `atc_auto` a publish turns
//! ATC on when its onMetaData says `bravo_atc: "true"` (what Adobe's encoders sent when
//! told to stamp absolute time), as SRS's `SrsLiveSource::on_meta_data` does.

use amf::Amf0Value;

/// What the vhost asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AtcPolicy {
    /// `atc on`: absolute time for every publish.
    pub atc: bool,
    /// `atc_auto on`: absolute time for a publish whose metadata asks for it.
    pub auto: bool,
}

impl AtcPolicy {
    pub fn of(vhost: &crate::config::VhostConfig) -> AtcPolicy {
        AtcPolicy {
            atc: vhost.effective_atc(),
            auto: vhost.effective_atc_auto(),
        }
    }
}

/// Whether an onMetaData payload (AMF0: the name, then an object or ECMA array) carries
/// `bravo_atc` set to `"true"` (SRS compares the string; a boolean true is accepted too,
/// as a tool writing AMF by hand may send one). Anything malformed is simply "no".
pub fn metadata_asks_atc(payload: &[u8]) -> bool {
    let Ok(values) = amf::decode_all(payload) else {
        return false;
    };
    values
        .iter()
        .filter_map(|v| v.get("bravo_atc"))
        .any(|v| match v {
            Amf0Value::Boolean(b) => *b,
            other => other.as_str() == Some("true"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(props: Vec<(&str, Amf0Value)>) -> Vec<u8> {
        let mut buf = Vec::new();
        amf::encode_all(
            &[
                Amf0Value::string("onMetaData"),
                Amf0Value::EcmaArray(props.into_iter().map(|(k, v)| (k.into(), v)).collect()),
            ],
            &mut buf,
        );
        buf
    }

    #[test]
    fn bravo_atc_true_asks_for_atc() {
        assert!(metadata_asks_atc(&metadata(vec![
            ("width", Amf0Value::Number(640.0)),
            ("bravo_atc", Amf0Value::string("true")),
        ])));
        assert!(metadata_asks_atc(&metadata(vec![(
            "bravo_atc",
            Amf0Value::Boolean(true)
        )])));
        assert!(!metadata_asks_atc(&metadata(vec![(
            "bravo_atc",
            Amf0Value::string("false")
        )])));
        assert!(!metadata_asks_atc(&metadata(vec![(
            "width",
            Amf0Value::Number(640.0)
        )])));
        assert!(!metadata_asks_atc(b"\x02\x00"), "truncated");
        assert!(!metadata_asks_atc(b""));
    }
}
