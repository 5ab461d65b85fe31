//! AMF0 decoder.
//!
//! Everything read here comes from the network, so: every read is checked,
//! nesting is bounded by [`MAX_DEPTH`], every loop consumes at least one input
//! byte per turn, preallocation is capped, and the copies made by references
//! are charged to a [`Budget`].

use crate::budget::{Budget, NODE_WEIGHT, PROPERTY_WEIGHT};
use crate::{amf3, marker, reader, Amf0Value, AmfError};

/// Deepest nesting of containers (objects, arrays) accepted. Real commands
/// nest two or three levels; the bound keeps recursion (here, and in `Drop`
/// and `Clone` of the result) far from the stack's limit.
pub const MAX_DEPTH: usize = 64;

/// AMF0 reference indexes are u16, so no more complex values can be referenced.
const MAX_COMPLEX: usize = 1 << 16;

/// Elements preallocated for a strict array, whatever count it declares: the
/// count is input, and the vector grows as elements really arrive.
const MAX_PREALLOC: usize = 1024;

/// A decoded value with what the bounds need to know about it.
#[derive(Debug, Clone)]
struct Node {
    value: Amf0Value,
    /// Approximate bytes the value occupies, charged when it is copied.
    weight: usize,
    /// Container levels inside it (0 for a scalar).
    height: usize,
}

impl Node {
    fn scalar(value: Amf0Value) -> Node {
        let text = value.as_str().map_or(0, str::len);
        Node {
            value,
            weight: NODE_WEIGHT.saturating_add(text),
            height: 0,
        }
    }
}

/// A complex value in the reference table.
#[derive(Debug)]
enum Slot {
    /// Being decoded: a reference to it would be a cycle.
    Pending,
    Kept(Node),
    /// Not kept: the table budget was spent.
    Dropped,
}

/// Decodes a sequence of values that share reference tables.
///
/// AMF0 references (0x07) and AMF3 string references point back into values
/// decoded earlier in the same sequence (one message body); [`crate::decode`]
/// and [`crate::decode_all`] each use a fresh `Decoder`. Use one directly to
/// decode a body value by value. After an error, the tables may hold partial
/// state: drop the decoder with the message.
#[derive(Debug, Default)]
pub struct Decoder {
    complex: Vec<Slot>,
    amf3_strings: amf3::Strings,
    budget: Budget,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes one value and advances `buf` past it; on error `buf` is left
    /// where it was.
    pub fn decode(&mut self, buf: &mut &[u8]) -> Result<Amf0Value, AmfError> {
        let mut cursor = *buf;
        let node = self.value(&mut cursor, 0)?;
        *buf = cursor;
        Ok(node.value)
    }

    /// Decodes values until `buf` ends.
    pub fn decode_all(&mut self, buf: &[u8]) -> Result<Vec<Amf0Value>, AmfError> {
        let mut cursor = buf;
        let mut values = Vec::new();
        while !cursor.is_empty() {
            values.push(self.decode(&mut cursor)?);
        }
        Ok(values)
    }

    /// `depth` is the number of containers enclosing this value.
    fn value(&mut self, buf: &mut &[u8], depth: usize) -> Result<Node, AmfError> {
        let marker = reader::u8(buf)?;
        let value = match marker {
            marker::NUMBER => Amf0Value::Number(reader::f64(buf)?),
            marker::BOOLEAN => Amf0Value::Boolean(reader::u8(buf)? != 0),
            marker::STRING => Amf0Value::String(reader::utf8(buf)?),
            marker::NULL => Amf0Value::Null,
            marker::UNDEFINED => Amf0Value::Undefined,
            // "Unsupported" is a value of its own on the wire, meaning "a type
            // the sender could not serialise": undefined is the closest.
            marker::UNSUPPORTED => Amf0Value::Undefined,
            marker::DATE => Amf0Value::Date {
                millis: reader::f64(buf)?,
                tz: reader::i16(buf)?,
            },
            // An XML document is a long string on the wire; keeping its text
            // is friendlier than failing the whole message over it.
            marker::LONG_STRING | marker::XML_DOCUMENT => {
                let len = reader::u32(buf)?;
                let len = usize::try_from(len).map_err(|_| AmfError::Truncated)?;
                Amf0Value::LongString(reader::text(buf, len)?)
            }
            marker::OBJECT | marker::TYPED_OBJECT | marker::ECMA_ARRAY | marker::STRICT_ARRAY => {
                return self.complex(buf, marker, depth)
            }
            marker::REFERENCE => return self.reference(reader::u16(buf)?, depth),
            marker::AVMPLUS => amf3::value(buf, &mut self.amf3_strings, &mut self.budget)?,
            marker::OBJECT_END => return Err(AmfError::UnexpectedObjectEnd),
            other => return Err(AmfError::UnknownMarker(other)),
        };
        Ok(Node::scalar(value))
    }

    /// Objects, typed objects, ECMA arrays and strict arrays: the values the
    /// spec numbers for references, in the order their markers appear (so a
    /// parent is numbered before its children).
    fn complex(&mut self, buf: &mut &[u8], marker: u8, depth: usize) -> Result<Node, AmfError> {
        if depth >= MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        let slot = self.reserve();
        let inner = depth + 1;
        let node = match marker {
            marker::STRICT_ARRAY => self.strict_array(buf, inner)?,
            marker::ECMA_ARRAY => {
                // The count is a hint that encoders get wrong (ffmpeg writes 0
                // for some metadata); the end marker is what ends the array.
                let _hint = reader::u32(buf)?;
                self.properties(buf, inner, Amf0Value::EcmaArray)?
            }
            marker::TYPED_OBJECT => {
                // We have no classes to map onto: keep the properties only.
                let _class_name = reader::utf8(buf)?;
                self.properties(buf, inner, Amf0Value::Object)?
            }
            _ => self.properties(buf, inner, Amf0Value::Object)?,
        };
        self.keep(slot, &node);
        Ok(node)
    }

    fn properties(
        &mut self,
        buf: &mut &[u8],
        depth: usize,
        wrap: fn(Vec<(String, Amf0Value)>) -> Amf0Value,
    ) -> Result<Node, AmfError> {
        let mut props = Vec::new();
        let mut weight = NODE_WEIGHT;
        let mut height = 0;
        while !take_object_end(buf) {
            let key = reader::utf8(buf)?;
            let child = self.value(buf, depth)?;
            weight = weight
                .saturating_add(PROPERTY_WEIGHT)
                .saturating_add(key.len())
                .saturating_add(child.weight);
            height = height.max(child.height);
            props.push((key, child.value));
        }
        Ok(Node {
            value: wrap(props),
            weight,
            height: height + 1,
        })
    }

    fn strict_array(&mut self, buf: &mut &[u8], depth: usize) -> Result<Node, AmfError> {
        let count = reader::u32(buf)?;
        let count = usize::try_from(count).map_err(|_| AmfError::Truncated)?;
        // Every element takes at least its marker byte: a count the input
        // cannot hold is truncated input, found before any work is done.
        if count > buf.len() {
            return Err(AmfError::Truncated);
        }
        let mut items = Vec::with_capacity(count.min(MAX_PREALLOC));
        let mut weight = NODE_WEIGHT;
        let mut height = 0;
        for _ in 0..count {
            let child = self.value(buf, depth)?;
            weight = weight.saturating_add(child.weight);
            height = height.max(child.height);
            items.push(child.value);
        }
        Ok(Node {
            value: Amf0Value::StrictArray(items),
            weight,
            height: height + 1,
        })
    }

    fn reserve(&mut self) -> Option<usize> {
        if self.complex.len() >= MAX_COMPLEX {
            return None;
        }
        self.complex.push(Slot::Pending);
        Some(self.complex.len() - 1)
    }

    fn keep(&mut self, slot: Option<usize>, node: &Node) {
        let Some(slot) = slot.and_then(|i| self.complex.get_mut(i)) else {
            return;
        };
        *slot = if self.budget.try_keep(node.weight) {
            Slot::Kept(node.clone())
        } else {
            Slot::Dropped
        };
    }

    /// Expands reference `index` to a copy of the complex value it names.
    fn reference(&mut self, index: u16, depth: usize) -> Result<Node, AmfError> {
        let Some(Slot::Kept(node)) = self.complex.get(usize::from(index)) else {
            return Err(AmfError::BadReference(index));
        };
        // The copy lands at `depth`, so its own levels count from there.
        if depth.saturating_add(node.height) > MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        self.budget.expand(node.weight)?;
        Ok(node.clone())
    }
}

/// Consumes the end of an object's property list, if `buf` is at one.
///
/// The spec's end is `00 00 09` (an empty key, then the object-end marker).
/// We also accept, as SRS and ffmpeg do:
/// - the input ending where a key would start: SRS's object reader loops
///   `while (!stream->empty())`, so an object (at any level) that runs to the
///   end of the message body simply ends there. A buffer ending inside a key
///   or a value is still an error.
/// - a bare `09` without the empty key, but only where reading it as a key
///   length could not succeed anyway (the key would run past the input):
///   ffmpeg's FLV metadata reader stops reading keys when fewer than 3 bytes
///   are left and then only checks for the `09` byte. Limiting the leniency to
///   input that would otherwise be rejected keeps every valid encoding
///   (including a real key whose length starts with byte 0x09) decoding as
///   the spec says.
///
/// An empty key followed by anything but `09` is an ordinary property named ""
/// (SRS reads it the same way).
fn take_object_end(buf: &mut &[u8]) -> bool {
    let consumed = match *buf {
        [] => 0,
        [0x00, 0x00, marker::OBJECT_END, ..] => 3,
        [marker::OBJECT_END, ..] if !key_fits(buf) => 1,
        _ => return false,
    };
    *buf = buf.get(consumed..).unwrap_or_default();
    true
}

/// Whether `buf` starts with a u16 length and that many bytes.
fn key_fits(buf: &[u8]) -> bool {
    match buf {
        [hi, lo, rest @ ..] => usize::from(u16::from_be_bytes([*hi, *lo])) <= rest.len(),
        _ => false,
    }
}
