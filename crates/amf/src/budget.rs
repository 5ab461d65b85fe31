//! Memory bounds for the copies that references make.
//!
//! Without references every decoded byte of output costs at least one byte of
//! input, so the message size limit of the RTMP layer bounds the output. A
//! reference breaks that: three bytes can copy an arbitrarily large earlier
//! value, and nesting references makes it exponential. So every copy (kept in
//! a reference table, or handed out by expanding a reference) is charged here
//! in approximate bytes.

use crate::AmfError;

/// Most bytes (approximately) that expanding references may copy in one
/// decode sequence. Real encoders (Flash, ffmpeg, OBS) do not emit references
/// in RTMP commands at all, so this only has to be generous enough for
/// hand-made tests while stopping a "billion laughs" input.
pub const MAX_EXPANSION: usize = 4 << 20;

/// Most bytes (approximately) kept as copies in the reference tables. Past
/// this, later values are not kept, and only a reference to one of them fails:
/// decoding ordinary large input never fails because of the tables.
pub(crate) const MAX_KEPT: usize = 4 << 20;

/// Approximate heap and inline cost of one value node.
pub(crate) const NODE_WEIGHT: usize = std::mem::size_of::<crate::Amf0Value>();
/// Approximate extra cost of a property over a bare value (its key header).
pub(crate) const PROPERTY_WEIGHT: usize = std::mem::size_of::<String>();

#[derive(Debug, Default)]
pub(crate) struct Budget {
    kept: usize,
    expanded: usize,
}

impl Budget {
    /// Whether a copy of `weight` may be kept in a table (and charges it).
    pub(crate) fn try_keep(&mut self, weight: usize) -> bool {
        match self.kept.checked_add(weight) {
            Some(total) if total <= MAX_KEPT => {
                self.kept = total;
                true
            }
            _ => false,
        }
    }

    /// Charges an expansion of `weight`, failing past [`MAX_EXPANSION`].
    pub(crate) fn expand(&mut self, weight: usize) -> Result<(), AmfError> {
        match self.expanded.checked_add(weight) {
            Some(total) if total <= MAX_EXPANSION => {
                self.expanded = total;
                Ok(())
            }
            _ => Err(AmfError::ExpansionLimit),
        }
    }
}
