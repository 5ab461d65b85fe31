//! Bit-level reading for codec parameter sets (H.264/H.265 SPS, AAC AudioSpecificConfig).
//!
//! Every read is checked: running off the end is an error, never a panic, so hostile parameter
//! sets can only fail to parse.

use crate::error::CodecError;

/// MSB-first bit reader over a byte slice.
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    /// `what` names the structure being read so errors say where parsing failed.
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, what }
    }

    fn eof(&self) -> CodecError {
        CodecError::truncated(self.what)
    }

    pub fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    pub fn read_bit(&mut self) -> Result<bool, CodecError> {
        let byte = *self.data.get(self.pos / 8).ok_or_else(|| self.eof())?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads up to 32 bits.
    pub fn read_bits(&mut self, n: u32) -> Result<u32, CodecError> {
        if n > 32 {
            return Err(CodecError::invalid(self.what, "bit field wider than 32"));
        }
        if (n as usize) > self.bits_left() {
            return Err(self.eof());
        }
        let mut v: u32 = 0;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.read_bit()?);
        }
        Ok(v)
    }

    pub fn read_u8(&mut self, n: u32) -> Result<u8, CodecError> {
        let v = self.read_bits(n.min(8))?;
        Ok(v as u8)
    }

    pub fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        if n > self.bits_left() {
            return Err(self.eof());
        }
        self.pos += n;
        Ok(())
    }

    /// Unsigned exp-Golomb (ue(v)). More than 31 leading zeros cannot fit a u32 and only
    /// appears in garbage, so it is refused rather than widened.
    pub fn read_ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0u32;
        while !self.read_bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(CodecError::invalid(self.what, "exp-Golomb code too long"));
            }
        }
        let suffix = self.read_bits(zeros)?;
        // (1 << zeros) - 1 + suffix, computed in u64 so zeros == 31 cannot overflow.
        let v = (1u64 << zeros) - 1 + u64::from(suffix);
        u32::try_from(v).map_err(|_| CodecError::invalid(self.what, "exp-Golomb value overflow"))
    }

    /// Signed exp-Golomb (se(v)).
    pub fn read_se(&mut self) -> Result<i32, CodecError> {
        let k = i64::from(self.read_ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(v).map_err(|_| CodecError::invalid(self.what, "exp-Golomb value overflow"))
    }
}

/// Strips H.264/H.265 emulation-prevention bytes: `00 00 03` becomes `00 00`, because parameter
/// sets must be parsed from the RBSP, not from the escaped NAL bytes.
pub fn nal_to_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        if b == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 -> 0, 1, 2, 3, 4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data, "t");
        assert_eq!(r.read_ue().unwrap(), 0);
        assert_eq!(r.read_ue().unwrap(), 1);
        assert_eq!(r.read_ue().unwrap(), 2);
        assert_eq!(r.read_ue().unwrap(), 3);
        assert_eq!(r.read_ue().unwrap(), 4);
        let mut r = BitReader::new(&data, "t");
        r.skip(1).unwrap();
        assert_eq!(r.read_se().unwrap(), 1);
        assert_eq!(r.read_se().unwrap(), -1);
    }

    #[test]
    fn runs_off_the_end() {
        let mut r = BitReader::new(&[0, 0, 0, 0, 0], "t");
        assert!(r.read_ue().is_err());
        let mut r = BitReader::new(&[], "t");
        assert!(r.read_bit().is_err());
        assert!(r.read_bits(1).is_err());
        assert!(r.skip(1).is_err());
    }

    #[test]
    fn max_exp_golomb() {
        // 31 zeros, 1, then 31 ones: 2^32 - 2.
        let data = [0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe];
        let mut r = BitReader::new(&data, "t");
        assert_eq!(r.read_ue().unwrap(), u32::MAX - 1);
    }
}
