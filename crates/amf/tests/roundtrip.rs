//! Encode/decode round trips, references, the AMF3 switch and leniency.

use amf::{decode, decode_all, encode_all, Amf0Value, AmfError, Decoder, MAX_DEPTH};

fn every_type() -> Vec<Amf0Value> {
    vec![
        Amf0Value::Number(0.0),
        Amf0Value::Number(-1.5e300),
        Amf0Value::Number(f64::INFINITY),
        Amf0Value::Boolean(true),
        Amf0Value::Boolean(false),
        Amf0Value::string(""),
        Amf0Value::string("héllo wörld"),
        Amf0Value::object([("a", Amf0Value::Null), ("", Amf0Value::Number(1.0))]),
        Amf0Value::object(Vec::<(String, Amf0Value)>::new()),
        Amf0Value::Null,
        Amf0Value::Undefined,
        Amf0Value::EcmaArray(vec![
            ("duration".into(), Amf0Value::Number(0.0)),
            ("encoder".into(), Amf0Value::string("Lavf")),
        ]),
        Amf0Value::EcmaArray(vec![]),
        Amf0Value::StrictArray(vec![
            Amf0Value::Number(1.0),
            Amf0Value::string("two"),
            Amf0Value::StrictArray(vec![]),
        ]),
        Amf0Value::Date {
            millis: 1_700_000_000_123.0,
            tz: -480,
        },
        Amf0Value::LongString("short but long-typed".into()),
        Amf0Value::LongString("x".repeat(70_000)),
        Amf0Value::object([(
            "nested",
            Amf0Value::EcmaArray(vec![(
                "deeper".into(),
                Amf0Value::StrictArray(vec![Amf0Value::object([("k", true.into())])]),
            )]),
        )]),
    ]
}

#[test]
fn every_type_round_trips_alone_and_in_sequence() {
    let values = every_type();
    for v in &values {
        let bytes = v.to_bytes();
        let mut buf = &bytes[..];
        assert_eq!(decode(&mut buf).as_ref(), Ok(v), "{v:?}");
        assert!(buf.is_empty(), "{v:?} left {} bytes", buf.len());
    }
    let mut body = Vec::new();
    encode_all(&values, &mut body);
    assert_eq!(decode_all(&body), Ok(values));
}

#[test]
fn nan_round_trips_bitwise() {
    let bytes = Amf0Value::Number(f64::NAN).to_bytes();
    let mut buf = &bytes[..];
    match decode(&mut buf) {
        Ok(Amf0Value::Number(n)) => assert!(n.is_nan()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn long_string_becomes_long_string_on_the_wire() {
    let text = "y".repeat(65_536);
    let bytes = Amf0Value::string(text.clone()).to_bytes();
    let mut buf = &bytes[..];
    assert_eq!(decode(&mut buf), Ok(Amf0Value::LongString(text)));
}

#[test]
fn invalid_utf8_is_replaced_not_rejected() {
    let mut buf: &[u8] = &[0x02, 0x00, 0x03, b'a', 0xc3, 0x28];
    assert_eq!(decode(&mut buf), Ok(Amf0Value::string("a\u{fffd}(")));
    let mut key: &[u8] = &[0x03, 0x00, 0x01, 0xff, 0x05, 0x00, 0x00, 0x09];
    assert_eq!(
        decode(&mut key),
        Ok(Amf0Value::object([("\u{fffd}", Amf0Value::Null)]))
    );
}

#[test]
fn decode_advances_past_one_value_only() {
    let mut body = Vec::new();
    encode_all(
        &[Amf0Value::string("connect"), Amf0Value::Number(1.0)],
        &mut body,
    );
    let mut buf = &body[..];
    assert_eq!(decode(&mut buf), Ok(Amf0Value::string("connect")));
    assert_eq!(buf.len(), 9);
    assert_eq!(decode(&mut buf), Ok(Amf0Value::Number(1.0)));
    assert!(buf.is_empty());
    assert_eq!(decode(&mut buf), Err(AmfError::Truncated));
    assert_eq!(decode_all(&[]), Ok(vec![]));
}

#[test]
fn typed_object_and_unsupported_and_xml() {
    // typed object "Cls" {a: null}
    let bytes = [
        0x10, 0x00, 0x03, b'C', b'l', b's', 0x00, 0x01, b'a', 0x05, 0x00, 0x00, 0x09,
    ];
    let mut buf = &bytes[..];
    assert_eq!(
        decode(&mut buf),
        Ok(Amf0Value::object([("a", Amf0Value::Null)]))
    );
    assert!(buf.is_empty());
    assert_eq!(decode_all(&[0x0d]), Ok(vec![Amf0Value::Undefined]));
    assert_eq!(
        decode_all(&[0x0f, 0, 0, 0, 2, b'<', b'a']),
        Ok(vec![Amf0Value::LongString("<a".into())])
    );
}

#[test]
fn unknown_and_misplaced_markers() {
    for m in [0x04u8, 0x0e, 0x12, 0x3f, 0xff] {
        assert_eq!(decode_all(&[m]), Err(AmfError::UnknownMarker(m)));
    }
    assert_eq!(decode_all(&[0x09]), Err(AmfError::UnexpectedObjectEnd));
    // as a property value
    assert_eq!(
        decode_all(&[0x03, 0x00, 0x01, b'a', 0x09, 0x00, 0x00, 0x09]),
        Err(AmfError::UnexpectedObjectEnd)
    );
}

#[test]
fn boolean_is_any_nonzero() {
    assert_eq!(
        decode_all(&[0x01, 0x02]),
        Ok(vec![Amf0Value::Boolean(true)])
    );
    assert_eq!(
        decode_all(&[0x01, 0x00]),
        Ok(vec![Amf0Value::Boolean(false)])
    );
}

#[test]
fn ecma_count_is_only_a_hint() {
    // Count says 5, one property, then the end marker.
    let bytes = [
        0x08, 0, 0, 0, 5, 0x00, 0x01, b'a', 0x05, 0x00, 0x00, 0x09, 0x05,
    ];
    assert_eq!(
        decode_all(&bytes),
        Ok(vec![
            Amf0Value::EcmaArray(vec![("a".into(), Amf0Value::Null)]),
            Amf0Value::Null
        ])
    );
}

#[test]
fn lenient_object_ends() {
    let obj_a = Amf0Value::object([("a", Amf0Value::Null)]);
    // The body ends where the next key would start (no end marker at all).
    assert_eq!(
        decode_all(&[0x03, 0x00, 0x01, b'a', 0x05]),
        Ok(vec![obj_a.clone()])
    );
    // Nested: both objects run to the end of the body.
    assert_eq!(
        decode_all(&[0x03, 0x00, 0x01, b'o', 0x03, 0x00, 0x01, b'a', 0x05]),
        Ok(vec![Amf0Value::object([("o", obj_a.clone())])])
    );
    // A bare 0x09 at the end of the body.
    assert_eq!(
        decode_all(&[0x03, 0x00, 0x01, b'a', 0x05, 0x09]),
        Ok(vec![obj_a.clone()])
    );
    // A bare 0x09 followed by one more byte (ffmpeg's "< 3 bytes left" case).
    assert_eq!(
        decode_all(&[0x03, 0x00, 0x01, b'a', 0x05, 0x09, 0x05]),
        Ok(vec![obj_a.clone(), Amf0Value::Null])
    );
    // A bare 0x09 in the middle, where a key of length 0x09xx cannot fit.
    assert_eq!(
        decode_all(&[0x03, 0x00, 0x01, b'a', 0x05, 0x09, 0x02, 0x00, 0x01, b'z']),
        Ok(vec![obj_a, Amf0Value::string("z")])
    );
    // An empty key with a value is an ordinary property.
    assert_eq!(
        decode_all(&[0x03, 0x00, 0x00, 0x05, 0x00, 0x00, 0x09]),
        Ok(vec![Amf0Value::object([("", Amf0Value::Null)])])
    );
    // An empty key and then nothing is a truncated value, not an end.
    assert_eq!(decode_all(&[0x03, 0x00, 0x00]), Err(AmfError::Truncated));
}

#[test]
fn real_key_starting_with_0x09_is_still_a_key() {
    let key = "k".repeat(0x0905);
    let v = Amf0Value::object([(key, Amf0Value::Null)]);
    let bytes = v.to_bytes();
    assert_eq!(bytes.get(1), Some(&0x09));
    assert_eq!(decode_all(&bytes), Ok(vec![v]));
}

#[test]
fn strict_array_count_is_bounded_by_input() {
    assert_eq!(
        decode_all(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x05, 0x05]),
        Err(AmfError::Truncated)
    );
    assert_eq!(
        decode_all(&[0x0a, 0, 0, 0, 2, 0x05, 0x05]),
        Ok(vec![Amf0Value::StrictArray(vec![
            Amf0Value::Null,
            Amf0Value::Null
        ])])
    );
    assert_eq!(
        decode_all(&[0x0a, 0, 0, 0, 3, 0x05, 0x05]),
        Err(AmfError::Truncated)
    );
}

#[test]
fn long_string_length_is_bounded_by_input() {
    assert_eq!(
        decode_all(&[0x0c, 0xff, 0xff, 0xff, 0xff, b'a']),
        Err(AmfError::Truncated)
    );
}

fn nested_objects(levels: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..levels {
        bytes.extend_from_slice(&[0x03, 0x00, 0x01, b'o']);
    }
    bytes.push(0x05);
    for _ in 0..levels {
        bytes.extend_from_slice(&[0x00, 0x00, 0x09]);
    }
    bytes
}

#[test]
fn depth_is_bounded() {
    // MAX_DEPTH containers, the innermost holding a null: accepted.
    let ok = nested_objects(MAX_DEPTH);
    assert!(decode_all(&ok).is_ok());
    assert_eq!(
        decode_all(&nested_objects(MAX_DEPTH + 1)),
        Err(AmfError::TooDeep)
    );
    // Strict arrays count as levels too.
    let mut arrays = vec![];
    for _ in 0..=MAX_DEPTH {
        arrays.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
    }
    arrays.push(0x05);
    assert_eq!(decode_all(&arrays), Err(AmfError::TooDeep));
    // A hostile depth far past the bound fails fast, no stack overflow.
    let mut deep = vec![];
    for _ in 0..1_000_000 {
        deep.extend_from_slice(&[0x08, 0, 0, 0, 0, 0x00, 0x01, b'x']);
    }
    assert_eq!(decode_all(&deep), Err(AmfError::TooDeep));
}

#[test]
fn references_expand_to_copies() {
    // [ {a: 1}, ref 1, ref 0 ]: the strict array is complex value 0 (its
    // marker comes first), the object is 1. A reference to 0 from inside
    // the array would be a cycle.
    let inner = Amf0Value::object([("a", Amf0Value::Number(1.0))]);
    let mut bytes = vec![0x0a, 0, 0, 0, 2];
    inner.encode(&mut bytes);
    bytes.extend_from_slice(&[0x07, 0x00, 0x01]);
    let mut buf = &bytes[..];
    assert_eq!(
        decode(&mut buf),
        Ok(Amf0Value::StrictArray(vec![inner.clone(), inner.clone()]))
    );

    // The cycle: a reference to the array from inside itself.
    let cyclic = [0x0a, 0, 0, 0, 1, 0x07, 0x00, 0x00];
    assert_eq!(decode_all(&cyclic), Err(AmfError::BadReference(0)));
    // Out of range.
    assert_eq!(
        decode_all(&[0x07, 0x00, 0x00]),
        Err(AmfError::BadReference(0))
    );
    assert_eq!(decode_all(&[0x07, 0x00]), Err(AmfError::Truncated));

    // Across the values of one body (decode_all), but not across separate
    // decode() calls.
    let mut body = Vec::new();
    encode_all(&[Amf0Value::string("cmd"), inner.clone()], &mut body);
    body.extend_from_slice(&[0x07, 0x00, 0x00]);
    assert_eq!(
        decode_all(&body),
        Ok(vec![Amf0Value::string("cmd"), inner.clone(), inner.clone()])
    );
    let mut buf = &body[..];
    decode(&mut buf).ok();
    decode(&mut buf).ok();
    assert_eq!(decode(&mut buf), Err(AmfError::BadReference(0)));

    // A Decoder carries the tables across its calls.
    let mut decoder = Decoder::new();
    let mut buf = &body[..];
    for want in [Amf0Value::string("cmd"), inner.clone(), inner] {
        assert_eq!(decoder.decode(&mut buf), Ok(want));
    }
}

#[test]
fn typed_objects_are_referenceable() {
    let bytes = [
        0x0a, 0, 0, 0, 2, // array (complex 0)
        0x10, 0x00, 0x01, b'C', 0x00, 0x01, b'a', 0x05, 0x00, 0x00, 0x09, // complex 1
        0x07, 0x00, 0x01,
    ];
    let obj = Amf0Value::object([("a", Amf0Value::Null)]);
    assert_eq!(
        decode_all(&bytes),
        Ok(vec![Amf0Value::StrictArray(vec![obj.clone(), obj])])
    );
}

/// "Billion laughs": each level is an array of two references to the level
/// before, so the expansion doubles per level.
#[test]
fn reference_expansion_is_bounded() {
    let mut body = vec![
        0x03, 0x00, 0x01, b'x', 0x02, 0x00, 0x04, b'l', b'o', b'l', b'!', 0x00, 0x00, 0x09,
    ];
    for level in 0u16..40 {
        body.extend_from_slice(&[0x0a, 0, 0, 0, 2, 0x07]);
        body.extend_from_slice(&level.to_be_bytes());
        body.push(0x07);
        body.extend_from_slice(&level.to_be_bytes());
    }
    assert_eq!(decode_all(&body), Err(AmfError::ExpansionLimit));

    // Many references to one big value are bounded too.
    let big = Amf0Value::object([("blob", Amf0Value::string("z".repeat(60_000)))]);
    let mut body = big.to_bytes();
    for _ in 0..1_000 {
        body.extend_from_slice(&[0x07, 0x00, 0x00]);
    }
    assert_eq!(decode_all(&body), Err(AmfError::ExpansionLimit));

    // A reference whose copy would nest too deep is refused.
    let mut body = nested_objects(MAX_DEPTH);
    body.extend_from_slice(&[0x03, 0x00, 0x01, b'r', 0x07, 0x00, 0x00, 0x00, 0x00, 0x09]);
    assert_eq!(decode_all(&body), Err(AmfError::TooDeep));
}

#[test]
fn amf3_switch() {
    // connect-like body where arguments switch to AMF3 one value at a time.
    let body = [
        0x11, 0x06, 0x0f, b'c', b'o', b'n', b'n', b'e', b'c', b't', // "connect"
        0x11, 0x04, 0x01, // integer 1
        0x11, 0x01, // null
        0x11, 0x06, 0x00, // reference to string 0 ("connect")
        0x11, 0x02, 0x11, 0x03, 0x11, 0x00, // false, true, undefined
        0x11, 0x04, 0xff, 0xff, 0xff, 0xf6, // integer -10
        0x11, 0x05, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, // double 1.5
        0x11, 0x06, 0x01, // empty string (not in the table)
        0x02, 0x00, 0x01, b'x', // back to AMF0 after each value
    ];
    assert_eq!(
        decode_all(&body),
        Ok(vec![
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::Null,
            Amf0Value::string("connect"),
            Amf0Value::Boolean(false),
            Amf0Value::Boolean(true),
            Amf0Value::Undefined,
            Amf0Value::Number(-10.0),
            Amf0Value::Number(1.5),
            Amf0Value::string(""),
            Amf0Value::string("x"),
        ])
    );
    // Inside an AMF0 object.
    assert_eq!(
        decode_all(&[0x03, 0x00, 0x01, b'n', 0x11, 0x04, 0x07, 0x00, 0x00, 0x09]),
        Ok(vec![Amf0Value::object([("n", Amf0Value::Number(7.0))])])
    );
    // Complex AMF3 types are refused.
    assert_eq!(
        decode_all(&[0x11, 0x0a, 0x0b]),
        Err(AmfError::Amf3Unsupported(0x0a))
    );
    assert_eq!(
        decode_all(&[0x11, 0x09, 0x01, 0x01]),
        Err(AmfError::Amf3Unsupported(0x09))
    );
    assert_eq!(decode_all(&[0x11]), Err(AmfError::Truncated));
    assert_eq!(
        decode_all(&[0x11, 0x06, 0x02]),
        Err(AmfError::Amf3BadReference(1))
    );
}

#[test]
fn amf3_string_reference_expansion_is_bounded() {
    let mut body = vec![0x11, 0x06];
    // u29 header for a 60000-byte inline string: (60000 << 1) | 1 = 120001.
    let header: u32 = (60_000 << 1) | 1;
    body.extend_from_slice(&[
        0x80 | ((header >> 14) & 0x7f) as u8,
        0x80 | ((header >> 7) & 0x7f) as u8,
        (header & 0x7f) as u8,
    ]);
    body.extend(std::iter::repeat_n(b's', 60_000));
    let one = decode_all(&body).expect("one long AMF3 string");
    assert_eq!(
        one.first().and_then(Amf0Value::as_str).map(str::len),
        Some(60_000)
    );
    for _ in 0..1_000 {
        body.extend_from_slice(&[0x11, 0x06, 0x00]);
    }
    assert_eq!(decode_all(&body), Err(AmfError::ExpansionLimit));
}
