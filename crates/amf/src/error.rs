//! The one error type of this crate.

/// Why a byte sequence could not be decoded as AMF0.
///
/// Every variant is final for the value being decoded: the caller (the RTMP
/// session) turns it into a protocol error on that connection only.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AmfError {
    /// The input ended in the middle of a value.
    #[error("AMF input ended in the middle of a value")]
    Truncated,
    /// A type marker this decoder does not know or does not accept.
    #[error("unknown or unsupported AMF0 marker 0x{0:02x}")]
    UnknownMarker(u8),
    /// An object-end marker (0x09) where a value was expected.
    #[error("AMF0 object-end marker where a value was expected")]
    UnexpectedObjectEnd,
    /// Containers nested deeper than [`crate::MAX_DEPTH`].
    #[error("AMF values nested deeper than {} levels", crate::MAX_DEPTH)]
    TooDeep,
    /// An AMF0 reference to a complex value that does not exist (yet), is
    /// still being decoded (a cycle), or was not kept because the reference
    /// table was full.
    #[error("AMF0 reference {0} points to no usable complex value")]
    BadReference(u16),
    /// Expanding references (AMF0 or AMF3 strings) would copy more data than
    /// [`crate::MAX_EXPANSION`] allows.
    #[error("AMF references expand to more than {} bytes", crate::MAX_EXPANSION)]
    ExpansionLimit,
    /// An AMF3 value (after the 0x11 switch) of a type this decoder does not
    /// map onto AMF0 (xml, date, array, object, byte array, vectors, dictionary).
    #[error("unsupported AMF3 marker 0x{0:02x}")]
    Amf3Unsupported(u8),
    /// An AMF3 string reference to a string not in the table.
    #[error("AMF3 string reference {0} points to no stored string")]
    Amf3BadReference(u32),
}
