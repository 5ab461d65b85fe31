//! Every `amf0` conformance vector from tests/fixtures/vectors.json.

use amf::{decode, decode_all, Amf0Value};
use serde_json::Value as Json;

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/vectors.json"
));

fn hex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "odd hex {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn props(list: &Json) -> Vec<(String, Amf0Value)> {
    list.as_array()
        .expect("property list")
        .iter()
        .map(|pair| {
            let key = pair[0].as_str().expect("key").to_owned();
            (key, from_json(&pair[1]))
        })
        .collect()
}

/// The JSON convention of shared/conformance/README.md.
fn from_json(v: &Json) -> Amf0Value {
    match v {
        Json::Null => Amf0Value::Null,
        Json::Bool(b) => Amf0Value::Boolean(*b),
        Json::String(s) => Amf0Value::String(s.clone()),
        Json::Object(map) => {
            if let Some(n) = map.get("number") {
                Amf0Value::Number(n.as_f64().expect("number"))
            } else if map.contains_key("undefined") {
                Amf0Value::Undefined
            } else if let Some(list) = map.get("object") {
                Amf0Value::Object(props(list))
            } else if let Some(list) = map.get("ecma_array") {
                Amf0Value::EcmaArray(props(list))
            } else if let Some(list) = map.get("strict_array") {
                Amf0Value::StrictArray(
                    list.as_array()
                        .expect("strict array")
                        .iter()
                        .map(from_json)
                        .collect(),
                )
            } else if let Some(ms) = map.get("date") {
                Amf0Value::Date {
                    millis: ms.as_f64().expect("date"),
                    tz: i16::try_from(map["tz"].as_i64().expect("tz")).expect("tz range"),
                }
            } else {
                panic!("unknown JSON AMF value {v}")
            }
        }
        other => panic!("unknown JSON AMF value {other}"),
    }
}

fn amf0_vectors() -> Vec<Json> {
    let root: Json = serde_json::from_str(VECTORS).expect("vectors.json");
    root["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .filter(|v| v["category"] == "amf0")
        .cloned()
        .collect()
}

#[test]
fn all_amf0_vectors() {
    let vectors = amf0_vectors();
    assert!(
        vectors.len() >= 10,
        "expected the amf0 vectors, got {}",
        vectors.len()
    );
    let mut checked = 0;
    for v in &vectors {
        let name = v["name"].as_str().expect("name");
        let expected = &v["expected"];
        if expected["error"] == true {
            let cases = expected["cases"].as_array().expect("cases");
            assert!(!cases.is_empty());
            for case in cases {
                let bytes = hex(case["hex"].as_str().expect("hex"));
                let why = case["why"].as_str().unwrap_or("");
                let mut buf = &bytes[..];
                assert!(decode(&mut buf).is_err(), "{name}: {why} must fail");
                assert_eq!(
                    buf.len(),
                    bytes.len(),
                    "{name}: {why}: cursor moved on error"
                );
                assert!(decode_all(&bytes).is_err(), "{name}: {why} (decode_all)");
                checked += 1;
            }
            continue;
        }
        let bytes = hex(v["input_hex"].as_str().expect("input_hex"));
        let want = from_json(&expected["value"]);
        let size = usize::try_from(expected["size"].as_u64().expect("size")).expect("size");
        let mut buf = &bytes[..];
        let got = decode(&mut buf).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}");
        assert_eq!(bytes.len() - buf.len(), size, "{name}: consumed size");
        // Our encoder must produce the same bytes (counts included: every
        // vector's ECMA count equals its number of properties).
        if let Some(count) = expected.get("count").and_then(Json::as_u64) {
            assert_eq!(
                got.properties().map(|p| p.len() as u64),
                Some(count),
                "{name}"
            );
        }
        assert_eq!(want.to_bytes(), bytes[..size], "{name}: encoding");
        checked += 1;
    }
    assert!(checked >= 20, "checked {checked}");
}

/// Command and data bodies in the message-encoding vectors are AMF0 value
/// sequences: they must decode to the listed values and encode back exactly.
#[test]
fn message_body_vectors() {
    let root: Json = serde_json::from_str(VECTORS).expect("vectors.json");
    let mut checked = 0;
    for v in root["vectors"].as_array().expect("vectors") {
        let expected = &v["expected"];
        let (Some(payload), Some(values)) = (
            expected.get("payload_hex").and_then(Json::as_str),
            expected.get("amf0").and_then(Json::as_array),
        ) else {
            continue;
        };
        let name = v["name"].as_str().expect("name");
        let bytes = hex(payload);
        let want: Vec<Amf0Value> = values.iter().map(from_json).collect();
        assert_eq!(decode_all(&bytes), Ok(want.clone()), "{name}");
        let mut out = Vec::new();
        amf::encode_all(&want, &mut out);
        assert_eq!(out, bytes, "{name}: encoding");
        checked += 1;
    }
    assert!(checked >= 4, "checked {checked}");
}
