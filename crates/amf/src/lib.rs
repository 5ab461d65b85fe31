//! amf
