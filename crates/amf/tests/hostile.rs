//! Hostile input: truncations, corruptions and random bytes must give a value
//! or an error, never a panic, a hang or a huge allocation.

use amf::{decode, decode_all, Amf0Value};

fn complex_value() -> Amf0Value {
    Amf0Value::object([
        ("app", Amf0Value::string("live")),
        (
            "flashVer",
            Amf0Value::string("FMLE/3.0 (compatible; FMSc/1.0)"),
        ),
        ("fpad", false.into()),
        ("capabilities", 239.0.into()),
        (
            "meta",
            Amf0Value::EcmaArray(vec![
                ("duration".into(), 0.0.into()),
                (
                    "list".into(),
                    Amf0Value::StrictArray(vec![
                        Amf0Value::Null,
                        Amf0Value::Undefined,
                        Amf0Value::Date { millis: 1.0, tz: 0 },
                        Amf0Value::LongString("long".into()),
                        Amf0Value::object([("deep", true.into())]),
                    ]),
                ),
            ]),
        ),
    ])
}

/// Every prefix either fails, or (thanks to the lenient object end) decodes
/// while consuming exactly what was there or less; never panics.
#[test]
fn every_prefix_of_a_complex_value() {
    let mut bytes = complex_value().to_bytes();
    // Append a reference and an AMF3 value so those paths are cut too.
    bytes.extend_from_slice(&[0x07, 0x00, 0x01, 0x11, 0x06, 0x05, b'a', b'b']);
    assert!(decode_all(&bytes).is_ok());
    for len in 0..=bytes.len() {
        let prefix = &bytes[..len];
        let mut buf = prefix;
        match decode(&mut buf) {
            Ok(_) => assert!(buf.len() <= prefix.len()),
            Err(_) => assert_eq!(buf.len(), prefix.len()),
        }
        let _ = decode_all(prefix);
    }
}

/// Flipping each byte of a valid encoding to a few interesting values.
#[test]
fn every_single_byte_corruption() {
    let bytes = complex_value().to_bytes();
    let mut corrupt = bytes.clone();
    for i in 0..bytes.len() {
        for b in [0x00, 0x07, 0x09, 0x0a, 0x11, 0x7f, 0x80, 0xff] {
            corrupt[i] = b;
            let _ = decode_all(&corrupt);
        }
        corrupt[i] = bytes[i];
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// 100k random inputs, biased towards AMF markers so decoding gets deep
/// instead of failing on the first byte.
#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut input = Vec::with_capacity(64);
    let mut decoded = 0u32;
    for _ in 0..100_000 {
        input.clear();
        let len = (rng.next() % 64) as usize;
        for _ in 0..len {
            let r = rng.next();
            let byte = match r % 3 {
                0 => (r >> 8) as u8 % 0x12, // a marker
                1 => (r >> 8) as u8 % 4,    // small lengths and counts
                _ => (r >> 8) as u8,
            };
            input.push(byte);
        }
        if decode_all(&input).is_ok() {
            decoded += 1;
        }
    }
    // Sanity: the generator does reach valid input sometimes.
    assert!(decoded > 100, "only {decoded} random inputs decoded");
}
