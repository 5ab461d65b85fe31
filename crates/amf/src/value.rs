//! The AMF0 value model and the accessors RTMP command handling leans on.

/// One AMF0 value.
///
/// Objects and ECMA arrays keep their properties as an ordered list, not a
/// map: order is visible on the wire (and in SRS's output), duplicate keys do
/// occur in the wild, and lists this small are searched faster than hashed.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    /// The u32 count on the wire is only a hint; it is not kept, and it is
    /// written back as the real number of properties.
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the epoch; `tz` is carried as found (the spec says
    /// senders should write 0 and readers should ignore it).
    Date {
        millis: f64,
        tz: i16,
    },
    LongString(String),
}

impl Amf0Value {
    /// Text of a `String` or `LongString`: callers should not care which of
    /// the two a peer chose.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Properties of an `Object` or `EcmaArray`: encoders differ in which one
    /// they use for the same thing (e.g. `onMetaData`), so readers treat both
    /// alike.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(props) | Amf0Value::EcmaArray(props) => Some(props),
            _ => None,
        }
    }

    /// First property named `key` (first wins, as SRS's lookup does when a
    /// key is repeated).
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Builds an `Object` from `(key, value)` pairs, keeping their order.
    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Amf0Value)>) -> Amf0Value {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Builds a `String`; the encoder switches to a long string by itself when
    /// the text needs it.
    pub fn string(s: impl Into<String>) -> Amf0Value {
        Amf0Value::String(s.into())
    }
}

impl From<f64> for Amf0Value {
    fn from(n: f64) -> Self {
        Amf0Value::Number(n)
    }
}

impl From<bool> for Amf0Value {
    fn from(b: bool) -> Self {
        Amf0Value::Boolean(b)
    }
}

impl From<&str> for Amf0Value {
    fn from(s: &str) -> Self {
        Amf0Value::String(s.to_owned())
    }
}

impl From<String> for Amf0Value {
    fn from(s: String) -> Self {
        Amf0Value::String(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        let v = Amf0Value::object([
            ("app", Amf0Value::string("live")),
            ("fpad", false.into()),
            ("audioCodecs", 3575.0.into()),
            ("app", Amf0Value::string("shadowed")),
        ]);
        assert_eq!(v.get("app").and_then(Amf0Value::as_str), Some("live"));
        assert_eq!(v.get("fpad").and_then(Amf0Value::as_bool), Some(false));
        assert_eq!(
            v.get("audioCodecs").and_then(Amf0Value::as_number),
            Some(3575.0)
        );
        assert_eq!(v.get("missing"), None);
        assert_eq!(v.properties().map(<[_]>::len), Some(4));

        let ecma = Amf0Value::EcmaArray(vec![("k".into(), Amf0Value::Null)]);
        assert_eq!(ecma.get("k"), Some(&Amf0Value::Null));
        assert_eq!(Amf0Value::Null.get("k"), None);
        assert_eq!(Amf0Value::Null.properties(), None);
        assert_eq!(Amf0Value::LongString("x".into()).as_str(), Some("x"));
        assert_eq!(Amf0Value::Number(1.0).as_str(), None);
        assert_eq!(Amf0Value::string("1").as_number(), None);
        assert_eq!(Amf0Value::Null.as_bool(), None);
    }
}
