//! AAC-LC encoding in process with libavcodec's native `aac` encoder (the system's
//! FFmpeg libraries; Debian `libavcodec-dev` to build, `libavcodec59` to run).
//!
//! Why this and not another encoder: see `docs/webrtc.md` ("Opus → AAC"). In short,
//! libavcodec is in Debian main and maintained with FFmpeg, its `aac` encoder is the
//! one ffmpeg uses by default, and a C shim of ~150 lines (`csrc/shim.c`) is all the
//! binding needed: no bindgen, no libclang, no C++ build, seconds of build time.
//!
//! All struct access is in the shim, compiled against the installed headers; Rust sees
//! an opaque pointer and five functions. PCM goes in planar (one slice per channel),
//! packets of raw AAC (no ADTS) come out with their presentation time in samples.

use std::ffi::{c_char, c_int};
use std::ptr::NonNull;

#[repr(C)]
struct RawEncoder {
    _opaque: [u8; 0],
}

extern "C" {
    fn sluice_aac_new(
        rate: c_int,
        channels: c_int,
        bitrate: c_int,
        err: *mut c_char,
        errcap: usize,
    ) -> *mut RawEncoder;
    fn sluice_aac_free(e: *mut RawEncoder);
    fn sluice_aac_frame_size(e: *const RawEncoder) -> c_int;
    fn sluice_aac_extradata(e: *const RawEncoder, data: *mut *const u8) -> c_int;
    fn sluice_aac_send(
        e: *mut RawEncoder,
        planar: *const f32,
        nb_samples: c_int,
        pts: i64,
    ) -> c_int;
    fn sluice_aac_receive(e: *mut RawEncoder, out: *mut u8, cap: c_int, pts: *mut i64) -> c_int;
    fn sluice_aac_eagain() -> c_int;
}

/// Largest AAC packet: 6144 bits per channel per frame (ISO 14496-3), two channels.
const MAX_PACKET: usize = 2 * 6144 / 8 + 64;

/// One encoded AAC frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacPacket {
    /// Presentation time in samples, on the clock of the PCM's `pts` (the encoder's
    /// priming delay makes the first ones earlier than the first input).
    pub pts: i64,
    pub data: Vec<u8>,
}

/// An AAC-LC encoder (one stream: one rate, one channel count).
pub struct AacEncoder {
    raw: NonNull<RawEncoder>,
    channels: usize,
    frame_size: usize,
    asc: Vec<u8>,
    planar: Vec<f32>,
}

// SAFETY: the encoder is owned by this value alone (no other pointer to it exists, the
// shim keeps no global state), and libavcodec contexts may be used from any thread as
// long as one thread at a time does: `&mut self` on every call that touches it.
unsafe impl Send for AacEncoder {}

impl AacEncoder {
    /// An encoder for `channels` (1 or 2) at `rate` Hz and `bitrate` b/s.
    pub fn new(rate: u32, channels: usize, bitrate: u32) -> Result<AacEncoder, String> {
        if !(1..=2).contains(&channels) {
            return Err(format!("{channels} channels (1 or 2 supported)"));
        }
        let rate = c_int::try_from(rate).map_err(|_| format!("rate {rate}"))?;
        let bitrate = c_int::try_from(bitrate).map_err(|_| format!("bitrate {bitrate}"))?;
        let mut err = [0 as c_char; 256];
        // SAFETY: `err` is a writable buffer of `err.len()` bytes for the call's duration;
        // the shim writes a NUL-terminated message of at most that many bytes (snprintf).
        let raw = unsafe {
            sluice_aac_new(
                rate,
                channels as c_int,
                bitrate,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        let Some(raw) = NonNull::new(raw) else {
            // SAFETY: snprintf NUL-terminated the buffer, or it is still all zeros.
            let msg = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) };
            return Err(msg.to_string_lossy().into_owned());
        };
        // SAFETY: `raw` is a live encoder (non-null from sluice_aac_new, not yet freed).
        let frame_size = unsafe { sluice_aac_frame_size(raw.as_ptr()) };
        let mut data: *const u8 = std::ptr::null();
        // SAFETY: as above; `data` is a valid out-pointer. The shim points it at the
        // context's extradata, which lives until the encoder is freed, and returns its
        // length; it is copied at once below.
        let len = unsafe { sluice_aac_extradata(raw.as_ptr(), &mut data) };
        let asc = if data.is_null() || len <= 0 {
            Vec::new()
        } else {
            // SAFETY: `data` points to `len` initialized bytes owned by the live encoder.
            unsafe { std::slice::from_raw_parts(data, len as usize) }.to_vec()
        };
        let enc = AacEncoder {
            raw,
            channels,
            frame_size: usize::try_from(frame_size).unwrap_or(0),
            asc,
            planar: Vec::new(),
        };
        if enc.frame_size == 0 || enc.asc.is_empty() {
            return Err("the aac encoder gave no frame size or AudioSpecificConfig".into());
        }
        Ok(enc)
    }

    /// Samples per channel in each frame given to [`AacEncoder::encode`] (1024).
    pub fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// The AudioSpecificConfig (the body of an FLV AAC sequence header).
    pub fn audio_specific_config(&self) -> &[u8] {
        &self.asc
    }

    /// Encodes one frame of `frame_size()` samples per channel (`channels[c][i]`, fewer
    /// only for the last frame of a stream) starting at `pts` (in samples); the packets
    /// now ready go to `out`.
    pub fn encode(
        &mut self,
        channels: &[&[f32]],
        pts: i64,
        out: &mut Vec<AacPacket>,
    ) -> Result<(), String> {
        let n = channels.first().map(|c| c.len()).unwrap_or(0);
        if channels.len() != self.channels || channels.iter().any(|c| c.len() != n) {
            return Err("channel count or lengths do not match the encoder".into());
        }
        if n == 0 || n > self.frame_size {
            return Err(format!("{n} samples (1..={} per frame)", self.frame_size));
        }
        self.planar.clear();
        for c in channels {
            self.planar.extend_from_slice(c);
        }
        loop {
            // SAFETY: `raw` is live and used by this thread alone (&mut self);
            // `planar` holds `self.channels` runs of `n` floats, n <= frame size, which
            // is what the shim reads.
            let r = unsafe {
                sluice_aac_send(self.raw.as_ptr(), self.planar.as_ptr(), n as c_int, pts)
            };
            // SAFETY: a plain function returning a constant.
            if r == unsafe { sluice_aac_eagain() } {
                // The encoder holds packets: take them, then send again.
                let before = out.len();
                self.receive(out)?;
                if out.len() == before {
                    return Err("the aac encoder takes no input and gives no output".into());
                }
                continue;
            }
            if r < 0 {
                return Err(format!("aac encode: error {r}"));
            }
            break;
        }
        self.receive(out)
    }

    /// Drains the encoder at the end of a stream (its last, delayed, packets).
    pub fn flush(&mut self, out: &mut Vec<AacPacket>) -> Result<(), String> {
        // SAFETY: `raw` is live; a null frame with 0 samples is the shim's flush.
        let r = unsafe { sluice_aac_send(self.raw.as_ptr(), std::ptr::null(), 0, 0) };
        if r < 0 {
            return Err(format!("aac flush: error {r}"));
        }
        self.receive(out)
    }

    fn receive(&mut self, out: &mut Vec<AacPacket>) -> Result<(), String> {
        let mut buf = vec![0u8; MAX_PACKET];
        loop {
            let mut pts = 0i64;
            // SAFETY: `raw` is live; `buf` is writable for `buf.len()` bytes, which the
            // shim never exceeds (it refuses a larger packet); `pts` is a valid
            // out-pointer.
            let r = unsafe {
                sluice_aac_receive(
                    self.raw.as_ptr(),
                    buf.as_mut_ptr(),
                    buf.len() as c_int,
                    &mut pts,
                )
            };
            if r == 0 {
                return Ok(());
            }
            if r < 0 {
                return Err(format!("aac receive: error {r}"));
            }
            out.push(AacPacket {
                pts,
                data: buf[..r as usize].to_vec(),
            });
        }
    }
}

impl Drop for AacEncoder {
    fn drop(&mut self) {
        // SAFETY: `raw` came from sluice_aac_new, is freed only here, and no reference
        // into it (the ASC was copied) outlives `self`.
        unsafe { sluice_aac_free(self.raw.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_of_stereo_48k_becomes_47_frames_and_an_asc() {
        let mut e = AacEncoder::new(48_000, 2, 128_000).expect("encoder");
        // AAC-LC (2), 48 kHz (index 3), 2 channels: 0x11 0x90.
        // libavcodec may add the backward-compatible "no SBR" sync extension after it.
        assert_eq!(&e.audio_specific_config()[..2], &[0x11, 0x90]);
        assert_eq!(e.frame_size(), 1024);
        let mut out = Vec::new();
        let n = e.frame_size();
        let mut pts = 0i64;
        while pts < 48_000 {
            let l: Vec<f32> = (0..n)
                .map(|i| {
                    ((pts as f32 + i as f32) * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.3
                })
                .collect();
            e.encode(&[&l, &l], pts, &mut out).expect("encode");
            pts += n as i64;
        }
        e.flush(&mut out).expect("flush");
        assert!(out.len() >= 47, "{} packets", out.len());
        assert!(out
            .iter()
            .all(|p| !p.data.is_empty() && p.data.len() < MAX_PACKET));
        // Consecutive packets are one frame apart.
        for w in out.windows(2) {
            assert_eq!(w[1].pts - w[0].pts, 1024);
        }
        // Wrong shapes are refused, not read out of bounds.
        assert!(e.encode(&[&[0.0; 10]], 0, &mut out).is_err());
        assert!(e
            .encode(&[&[0.0; 2000], &[0.0; 2000]], 0, &mut out)
            .is_err());
        assert!(AacEncoder::new(48_000, 3, 128_000).is_err());
    }
}
