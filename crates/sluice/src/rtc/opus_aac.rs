//! Opus → AAC for a WHIP publisher, so that RTMP, HTTP-FLV, HLS, DVR and forward get
//! its audio: Opus decoded by libopus (the `opus` crate, already linked for AAC → Opus),
//! AAC-LC encoded by libavcodec's native encoder ([`libavaac`], see docs/webrtc.md for
//! why), both at 48 kHz stereo, so nothing is resampled.
//!
//! Sans-IO: Opus packets with their RTP time in, FLV audio tag bodies with their
//! timestamps out. The AAC timeline is the RTP clock: each packet's samples go where its
//! RTP time says, a gap (loss, or DTX silence) is filled with silence up to
//! [`MAX_GAP`], a longer one moves the timeline on, and a packet from the past is
//! dropped. Timestamps are therefore continuous and do not drift from the video's.

use bytes::Bytes;
use libavaac::{AacEncoder, AacPacket};

/// Opus's clock, and the AAC rate chosen (AAC-LC has a 48 kHz sampling index).
pub const RATE: u32 = 48_000;
const CHANNELS: usize = 2;
const AAC_BITRATE: u32 = 128_000;
/// Largest Opus frame, 120 ms, in samples per channel (RFC 6716).
const MAX_OPUS_FRAME: usize = 5_760;
/// Gaps up to this (samples) are filled with silence; longer ones skip the timeline on.
pub const MAX_GAP: u64 = 5 * RATE as u64;
/// FLV audio tag header for AAC (SoundFormat 10, "44 kHz", 16-bit, stereo: FLV's fixed
/// values for AAC), then the AACPacketType.
const FLV_AAC: u8 = 0xAF;

/// One FLV audio tag body and its timestamp (ms on the publisher's session timeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacOut {
    pub ts_ms: u64,
    pub payload: Bytes,
}

pub struct OpusToAac {
    decoder: opus::Decoder,
    encoder: AacEncoder,
    /// Planar PCM not yet encoded, starting at sample `pending_pts`.
    pending: [Vec<f32>; CHANNELS],
    pending_pts: i64,
    /// RTP time (48 kHz, str0m's extended time) of sample 0 of the timeline, and the
    /// timeline's sample 0 on the session's ms clock.
    origin_rtp: Option<u64>,
    origin_ms: u64,
    sent_header: bool,
    scratch: Vec<f32>,
    packets: Vec<AacPacket>,
    /// Packets refused (undecodable, from the past), for the close line.
    pub dropped: u64,
}

impl OpusToAac {
    pub fn new() -> Result<OpusToAac, String> {
        let decoder = opus::Decoder::new(RATE, opus::Channels::Stereo)
            .map_err(|e| format!("Opus decoder: {e}"))?;
        let encoder = AacEncoder::new(RATE, CHANNELS, AAC_BITRATE)?;
        Ok(OpusToAac {
            decoder,
            encoder,
            pending: Default::default(),
            pending_pts: 0,
            origin_rtp: None,
            origin_ms: 0,
            sent_header: false,
            scratch: vec![0.0; MAX_OPUS_FRAME * CHANNELS],
            packets: Vec::new(),
            dropped: 0,
        })
    }

    /// One Opus packet whose first sample has RTP time `rtp48`; `first_ms` is where the
    /// timeline starts on the session clock (used with the first packet only). The AAC
    /// frames now complete (after a sequence header, once) go to `out`.
    pub fn push(&mut self, rtp48: u64, first_ms: u64, opus: &[u8], out: &mut Vec<AacOut>) {
        let origin = *self.origin_rtp.get_or_insert_with(|| {
            self.origin_ms = first_ms;
            rtp48
        });
        if !self.sent_header {
            self.sent_header = true;
            let mut seq = vec![FLV_AAC, 0];
            seq.extend_from_slice(self.encoder.audio_specific_config());
            out.push(AacOut {
                ts_ms: first_ms,
                payload: Bytes::from(seq),
            });
        }
        let Some(at) = rtp48.checked_sub(origin) else {
            self.dropped += 1;
            return;
        };
        let at = at as i64;
        let expected = self.pending_pts + self.pending[0].len() as i64;
        if at < expected {
            // Behind what was already placed (a duplicate, or reordered past the jitter
            // buffer): dropped, the timeline never goes back.
            self.dropped += 1;
            return;
        }
        let n = match self.decoder.decode_float(opus, &mut self.scratch, false) {
            Ok(n) => n.min(MAX_OPUS_FRAME),
            Err(e) => {
                tracing::debug!("opus decode: {e}");
                self.dropped += 1;
                return;
            }
        };
        let gap = (at - expected) as u64;
        if gap > MAX_GAP {
            // A long silence (the publisher muted with DTX, or a stall): what is pending
            // is completed to a whole frame with silence and encoded (the encoder takes
            // a short frame only as the last of a stream), then the timeline starts
            // again at the packet's place.
            let size = self.encoder.frame_size();
            let partial = self.pending[0].len() % size;
            if partial > 0 {
                for ch in &mut self.pending {
                    ch.resize(ch.len() + size - partial, 0.0);
                }
            }
            self.encode_pending(out);
            self.pending_pts = at;
        } else if gap > 0 {
            for ch in &mut self.pending {
                ch.resize(ch.len() + gap as usize, 0.0);
            }
        }
        for frame in self.scratch[..n * CHANNELS].chunks_exact(CHANNELS) {
            for (c, s) in frame.iter().enumerate() {
                self.pending[c].push(*s);
            }
        }
        self.encode_pending(out);
    }

    /// Encodes every whole frame of `pending`.
    fn encode_pending(&mut self, out: &mut Vec<AacOut>) {
        let size = self.encoder.frame_size();
        let mut done = 0;
        while self.pending[0].len() - done >= size {
            let n = size;
            let l = &self.pending[0][done..done + n];
            let r = &self.pending[1][done..done + n];
            if let Err(e) =
                self.encoder
                    .encode(&[l, r], self.pending_pts + done as i64, &mut self.packets)
            {
                tracing::debug!("aac encode: {e}");
            }
            done += n;
        }
        for ch in &mut self.pending {
            ch.drain(..done);
        }
        self.pending_pts += done as i64;
        for p in self.packets.drain(..) {
            // The encoder's priming makes its first packets start before the input.
            let ms = (self.origin_ms as i64 * i64::from(RATE / 1000) + p.pts).max(0) as u64
                / u64::from(RATE / 1000);
            let mut payload = Vec::with_capacity(p.data.len() + 2);
            payload.extend_from_slice(&[FLV_AAC, 1]);
            payload.extend_from_slice(&p.data);
            out.push(AacOut {
                ts_ms: ms,
                payload: Bytes::from(payload),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symphonia_core::codecs::{CodecParameters, Decoder, DecoderOptions, CODEC_TYPE_AAC};
    use symphonia_core::formats::Packet;

    /// 20 ms Opus packets of a 440 Hz tone, as a browser sends them.
    fn opus_packets(count: usize) -> Vec<Vec<u8>> {
        let mut enc =
            opus::Encoder::new(RATE, opus::Channels::Stereo, opus::Application::Voip).unwrap();
        (0..count)
            .map(|k| {
                let pcm: Vec<f32> = (0..960 * 2)
                    .map(|i| {
                        let t = (k * 960 + i / 2) as f32 / RATE as f32;
                        (t * 440.0 * std::f32::consts::TAU).sin() * 0.3
                    })
                    .collect();
                let mut out = vec![0u8; 4000];
                let n = enc.encode_float(&pcm, &mut out).unwrap();
                out.truncate(n);
                out
            })
            .collect()
    }

    #[test]
    fn opus_becomes_decodable_aac_on_the_rtp_clock() {
        let mut t = OpusToAac::new().expect("transcoder");
        let mut out = Vec::new();
        let origin = 3_000_000_000u64; // any RTP start
        for (k, p) in opus_packets(100).iter().enumerate() {
            // Packet 50 is lost: its 20 ms become silence, the clock goes on.
            if k == 50 {
                continue;
            }
            t.push(origin + k as u64 * 960, 1_000, p, &mut out);
        }
        // A sequence header first (AAC-LC 48 kHz stereo), once.
        // (libavcodec adds the backward-compatible "no SBR" sync extension after it.)
        assert_eq!(&out[0].payload[..4], &[0xAF, 0, 0x11, 0x90]);
        assert_eq!(out[0].ts_ms, 1_000);
        assert!(out[1..].iter().all(|o| o.payload[..2] == [0xAF, 1]));
        // 2 s of audio = 93.75 frames, minus what the encoder still holds.
        let frames = &out[1..];
        assert!((88..=94).contains(&frames.len()), "{} frames", frames.len());
        // Timestamps continuous: 21 or 22 ms apart (1024 samples at 48 kHz), from the
        // first packet's place (less the encoder's priming).
        assert!(frames[0].ts_ms >= 1_000 - 22 && frames[0].ts_ms <= 1_000);
        for w in frames.windows(2) {
            let d = w[1].ts_ms - w[0].ts_ms;
            assert!(d == 21 || d == 22, "step {d} ms");
        }
        // Real AAC: symphonia decodes every frame into 1024 stereo samples.
        let mut params = CodecParameters::new();
        params
            .for_codec(CODEC_TYPE_AAC)
            .with_extra_data(out[0].payload[2..].to_vec().into_boxed_slice());
        let mut dec = symphonia_codec_aac::AacDecoder::try_new(&params, &DecoderOptions::default())
            .expect("decoder");
        let mut energy = 0.0f64;
        for f in frames {
            let buf = dec
                .decode(&Packet::new_from_slice(0, 0, 0, &f.payload[2..]))
                .expect("valid AAC");
            assert_eq!(buf.frames(), 1024);
            let mut s = symphonia_core::audio::SampleBuffer::<f32>::new(1024, *buf.spec());
            s.copy_interleaved_ref(buf);
            energy += s
                .samples()
                .iter()
                .map(|x| f64::from(*x).powi(2))
                .sum::<f64>();
        }
        assert!(energy > 100.0, "the tone is there (energy {energy})");
        // From the past: dropped, no output, no panic.
        let before = out.len();
        t.push(origin, 1_000, &opus_packets(1)[0], &mut out);
        assert_eq!(out.len(), before);
        assert_eq!(t.dropped, 1);
    }

    #[test]
    fn garbage_and_long_gaps_are_survived() {
        let mut t = OpusToAac::new().expect("transcoder");
        let mut out = Vec::new();
        let p = opus_packets(3);
        t.push(0, 0, &p[0], &mut out);
        for junk in [&[][..], &[0xff; 3][..], &[0u8; 1500][..]] {
            t.push(960, 0, junk, &mut out);
        }
        // Ten minutes later: the timeline jumps, no 10 minutes of silence encoded.
        t.push(600 * u64::from(RATE), 0, &p[1], &mut out);
        t.push(600 * u64::from(RATE) + 960, 0, &p[2], &mut out);
        assert!(out.len() < 10, "{} outputs", out.len());
        let last = out.last().expect("output").ts_ms;
        assert!(last < 601_000, "{last}");
    }
}
