//! Short ids in lower-case base 36 (digits then letters), the alphabet SRS uses for its
//! client, server and service ids, so ours look the same in logs and hook bodies.

/// The digits, least significant value first.
pub const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// The `len` least significant base-36 digits of `n`, least significant first (the order
/// does not matter for an id, and this way no buffer has to be reversed).
pub fn base36(mut n: u64, len: usize) -> String {
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        // n % 36 < 36, so the index is in range.
        s.push(char::from(ALPHABET[(n % 36) as usize]));
        n /= 36;
    }
    s
}

/// splitmix64's finaliser: spreads every input bit over the output (a bijection), so
/// consecutive counters or near-identical digests give unrelated-looking ids. Not a secret.
pub fn scramble(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_digits() {
        assert_eq!(base36(0, 3), "000");
        assert_eq!(base36(35, 2), "z0");
        assert_eq!(base36(36, 2), "01");
        assert_eq!(base36(u64::MAX, 4).len(), 4);
    }

    #[test]
    fn scramble_spreads() {
        assert_ne!(scramble(1), scramble(2));
        assert_eq!(scramble(0), 0);
    }
}
