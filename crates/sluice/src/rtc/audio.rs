//! AAC → Opus for WHEP players of an RTMP stream, once per stream (in its feed): AAC
//! decoded by symphonia (pure Rust, no codec library to install), resampled to 48 kHz
//! (linear interpolation: the sources are 44.1 or 48 kHz speech and music, where its
//! aliasing stays far below what Opus removes at 64 kb/s), encoded by libopus (Debian's
//! `libopus`, through the `opus` crate) in 20 ms frames.

use symphonia_core::audio::SampleBuffer;
use symphonia_core::codecs::{CodecParameters, Decoder, DecoderOptions, CODEC_TYPE_AAC};
use symphonia_core::formats::Packet;

/// Opus's clock and frame: 20 ms at 48 kHz.
pub const OPUS_RATE: u32 = 48_000;
const FRAME: usize = 960;
const BITRATE: i32 = 64_000;
/// Largest Opus packet we produce (libopus's own bound for 20 ms is far below).
const MAX_PACKET: usize = 4000;
/// PCM held waiting for a whole frame, in samples: a bound against a decoder gone wrong.
const MAX_PENDING: usize = 48_000 * 2;

/// One Opus packet and its RTP time (48 kHz, on the publisher's clock).
pub struct OpusPacket {
    pub ts48: u64,
    pub data: Vec<u8>,
}

pub struct AacToOpus {
    decoder: symphonia_codec_aac::AacDecoder,
    encoder: opus::Encoder,
    channels: usize,
    in_rate: u32,
    /// Interleaved input-rate PCM not yet resampled, and the read position in frames.
    input: Vec<f32>,
    pos: f64,
    /// Interleaved 48 kHz PCM not yet encoded.
    pcm: Vec<f32>,
    /// RTP time of the first sample in `pcm`.
    next_ts48: Option<u64>,
}

impl AacToOpus {
    /// From the stream's AudioSpecificConfig (the FLV AAC sequence header's body).
    pub fn new(asc: &[u8]) -> Result<AacToOpus, String> {
        let mut params = CodecParameters::new();
        params
            .for_codec(CODEC_TYPE_AAC)
            .with_extra_data(asc.to_vec().into_boxed_slice());
        let decoder = <symphonia_codec_aac::AacDecoder as Decoder>::try_new(
            &params,
            &DecoderOptions::default(),
        )
        .map_err(|e| format!("AAC decoder: {e}"))?;
        let out = decoder.codec_params();
        let in_rate = out.sample_rate.unwrap_or(44_100);
        let channels = out.channels.map(|c| c.count()).unwrap_or(2).clamp(1, 2);
        let opus_channels = if channels == 1 {
            opus::Channels::Mono
        } else {
            opus::Channels::Stereo
        };
        let mut encoder = opus::Encoder::new(OPUS_RATE, opus_channels, opus::Application::Audio)
            .map_err(|e| format!("Opus encoder: {e}"))?;
        let _ = encoder.set_bitrate(opus::Bitrate::Bits(BITRATE));
        if !(8_000..=96_000).contains(&in_rate) {
            return Err(format!("AAC at {in_rate} Hz"));
        }
        Ok(AacToOpus {
            decoder,
            encoder,
            channels,
            in_rate,
            input: Vec::new(),
            pos: 0.0,
            pcm: Vec::new(),
            next_ts48: None,
        })
    }

    /// One raw AAC frame (the FLV payload after its 2-byte header) at `ts_ms`; the Opus
    /// packets now complete go to `out`.
    pub fn push(&mut self, aac: &[u8], ts_ms: u64, out: &mut Vec<OpusPacket>) {
        let packet = Packet::new_from_slice(0, 0, 0, aac);
        let decoded = match self.decoder.decode(&packet) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!("aac decode: {e}");
                return;
            }
        };
        let spec = *decoded.spec();
        let frames = decoded.frames();
        if frames == 0 {
            return;
        }
        let mut buf = SampleBuffer::<f32>::new(frames as u64, spec);
        buf.copy_interleaved_ref(decoded);
        let src_channels = spec.channels.count().max(1);
        if self.next_ts48.is_none() {
            self.next_ts48 = Some(ts_ms.saturating_mul(48));
        }
        // Down-mix or pick channels to what the encoder takes.
        for f in buf.samples().chunks(src_channels) {
            if self.channels == 1 {
                self.input.push(f.iter().sum::<f32>() / src_channels as f32);
            } else {
                let l = f.first().copied().unwrap_or(0.0);
                self.input.push(l);
                self.input.push(f.get(1).copied().unwrap_or(l));
            }
        }
        self.resample();
        if self.pcm.len() > MAX_PENDING {
            self.pcm.clear();
            self.next_ts48 = None;
            return;
        }
        let per_frame = FRAME * self.channels;
        while self.pcm.len() >= per_frame {
            let mut data = vec![0u8; MAX_PACKET];
            match self.encoder.encode_float(&self.pcm[..per_frame], &mut data) {
                Ok(n) => {
                    data.truncate(n);
                    let ts48 = self.next_ts48.unwrap_or(0);
                    out.push(OpusPacket { ts48, data });
                }
                Err(e) => tracing::debug!("opus encode: {e}"),
            }
            self.pcm.drain(..per_frame);
            self.next_ts48 = self.next_ts48.map(|t| t + FRAME as u64);
        }
    }

    /// Moves `input` (at `in_rate`) into `pcm` (at 48 kHz).
    fn resample(&mut self) {
        let ch = self.channels;
        if self.in_rate == OPUS_RATE {
            self.pcm.append(&mut self.input);
            return;
        }
        let step = f64::from(self.in_rate) / f64::from(OPUS_RATE);
        let frames = self.input.len() / ch;
        while self.pos + 1.0 < frames as f64 {
            let i = self.pos as usize;
            let frac = (self.pos - i as f64) as f32;
            for c in 0..ch {
                let a = self.input[i * ch + c];
                let b = self.input[(i + 1) * ch + c];
                self.pcm.push(a + (b - a) * frac);
            }
            self.pos += step;
        }
        let used = (self.pos as usize).min(frames);
        self.input.drain(..used * ch);
        self.pos -= used as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_the_rate() {
        // Without a real decoder: drive the resampler alone.
        let mut t = AacToOpus::new(&media::aac::encode_asc(2, 4, 2)).expect("44.1 kHz stereo");
        assert_eq!(t.in_rate, 44_100);
        t.input = vec![0.5; 44_100 * 2];
        t.resample();
        let out = t.pcm.len() / 2;
        assert!(
            (47_990..=48_000).contains(&out),
            "{out} frames from one second"
        );
    }
}
