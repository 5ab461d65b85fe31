//! Just enough STUN (RFC 8489) to route a datagram on the shared RTC port: is it STUN,
//! and which of our sessions does its USERNAME name. Everything else about STUN
//! (integrity, fingerprint, the binding response) is str0m's, once the datagram reached
//! its session. Sans-IO.

/// RFC 8489's magic cookie, at bytes 4..8 of every STUN message.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const HEADER_LEN: usize = 20;
const ATTR_USERNAME: u16 = 0x0006;
/// RFC 8489 caps USERNAME at 513 bytes.
const MAX_USERNAME: usize = 513;

/// Whether the datagram looks like STUN (RFC 7983's demultiplexing: first byte 0..=3,
/// and the magic cookie).
pub fn is_stun(d: &[u8]) -> bool {
    d.len() >= HEADER_LEN && d[0] < 4 && d[4..8] == MAGIC_COOKIE
}

/// The local (our) ufrag of a STUN request's `USERNAME` ("ours:theirs"), if present.
pub fn local_ufrag(d: &[u8]) -> Option<&str> {
    if !is_stun(d) {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([d[2], d[3]]));
    let body = d.get(HEADER_LEN..HEADER_LEN.checked_add(len)?)?;
    let mut pos = 0;
    while pos + 4 <= body.len() {
        let t = u16::from_be_bytes([body[pos], body[pos + 1]]);
        let l = usize::from(u16::from_be_bytes([body[pos + 2], body[pos + 3]]));
        let value = body.get(pos + 4..pos + 4 + l)?;
        if t == ATTR_USERNAME {
            if l > MAX_USERNAME {
                return None;
            }
            let user = std::str::from_utf8(value).ok()?;
            return user.split(':').next().filter(|u| !u.is_empty());
        }
        // Values are padded to 4 bytes.
        pos += 4 + l.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(username: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A PRIORITY attribute first, so the walk has to skip one.
        attrs.extend_from_slice(&[0x00, 0x24, 0, 4, 1, 2, 3, 4]);
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn finds_our_ufrag() {
        let m = binding(b"abcd:efgh");
        assert!(is_stun(&m));
        assert_eq!(local_ufrag(&m), Some("abcd"));
    }

    #[test]
    fn refuses_what_is_not_a_request_of_ours() {
        assert_eq!(local_ufrag(&binding(b":x")), None, "empty ufrag");
        assert_eq!(local_ufrag(&[0u8; 19]), None, "short");
        let mut m = binding(b"abcd:efgh");
        m[3] = 0xff; // length past the end
        assert_eq!(local_ufrag(&m), None);
        let mut rtp = binding(b"abcd:efgh");
        rtp[0] = 0x80;
        assert!(!is_stun(&rtp), "RTP's first byte");
        assert_eq!(local_ufrag(&binding(&[0xff, 0xfe])), None, "not UTF-8");
    }
}
