//! CRC-32/MPEG-2, the checksum closing every PSI section (ISO 13818-1 Annex A).

/// Poly 0x04C11DB7, MSB first. The table is built at compile time so the hot path is a lookup.
const TABLE: [u32; 256] = build_table();

const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04c1_1db7
            } else {
                c << 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// CRC-32/MPEG-2: init 0xFFFFFFFF, no reflection, no final xor. Over a section including its
/// own CRC the result is 0, which is how a decoder checks it.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xffff_ffff_u32, |crc, &b| {
        (crc << 8) ^ TABLE[usize::from((crc >> 24) as u8 ^ b)]
    })
}
