//! Protocol-control handling that both ends of an RTMP session share: what we owe
//! the peer for the bytes it sent (Acknowledgement every Window Acknowledgement
//! Size bytes) and the control messages both sides answer alike (Set Chunk Size,
//! Abort, Window Acknowledgement Size, Ping). The server and client sessions keep
//! only what differs (their commands, user-control events, media).

use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkError, MessageHeader};
use crate::message::{Message, UserControl};
use crate::server::csid;

/// Encodes `msg` (timestamp 0) onto `out`.
pub(crate) fn send(
    encoder: &mut ChunkEncoder,
    out: &mut Vec<u8>,
    csid: u32,
    stream_id: u32,
    msg: &Message,
) {
    let payload = msg.encode_payload();
    let header = MessageHeader {
        timestamp: 0,
        length: u32::try_from(payload.len()).unwrap_or(u32::MAX),
        type_id: msg.type_id(),
        stream_id,
    };
    encoder.encode_into(csid, &header, &payload, out);
}

/// Bytes received and the peer's acknowledgement window.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    bytes_in: u64,
    /// The peer's Window Acknowledgement Size; 0 until it sends one.
    window: u32,
    last_ack: u64,
    sent: u64,
}

impl Acks {
    pub(crate) fn received(&mut self, n: usize) {
        self.bytes_in += n as u64;
    }

    pub(crate) fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// The Acknowledgement due now, if a window's worth arrived since the last one.
    pub(crate) fn due(&mut self) -> Option<Message> {
        if self.window == 0 || self.bytes_in - self.last_ack < u64::from(self.window) {
            return None;
        }
        self.last_ack = self.bytes_in;
        self.sent += 1;
        // The sequence number is the byte count modulo 2^32 (it wraps by design).
        Some(Message::Acknowledgement {
            sequence: self.bytes_in as u32,
        })
    }
}

/// Handles the control messages both ends treat alike, a Ping Response encoded
/// onto `out`; gives any other message back, for the session to handle.
pub(crate) fn handle(
    msg: Message,
    decoder: &mut ChunkDecoder,
    acks: &mut Acks,
    encoder: &mut ChunkEncoder,
    out: &mut Vec<u8>,
) -> Result<Option<Message>, ChunkError> {
    match msg {
        Message::SetChunkSize(size) => decoder.set_chunk_size(size)?,
        Message::Abort { csid } => decoder.abort(csid),
        Message::WindowAckSize(size) => acks.window = size,
        Message::Acknowledgement { .. } | Message::SetPeerBandwidth { .. } => {}
        Message::UserControl(UserControl::PingRequest(t)) => {
            let pong = Message::UserControl(UserControl::PingResponse(t));
            send(encoder, out, csid::PROTOCOL, 0, &pong);
        }
        other => return Ok(Some(other)),
    }
    Ok(None)
}

/// Encodes the Acknowledgement due now, if any, onto `out`.
pub(crate) fn ack_if_due(acks: &mut Acks, encoder: &mut ChunkEncoder, out: &mut Vec<u8>) {
    if let Some(ack) = acks.due() {
        send(encoder, out, csid::PROTOCOL, 0, &ack);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_is_due_every_window_with_the_byte_count_as_sequence() {
        let mut acks = Acks::default();
        acks.received(10_000);
        assert!(acks.due().is_none(), "no window yet: no acks");
        acks.window = 4096;
        assert!(matches!(
            acks.due(),
            Some(Message::Acknowledgement { sequence: 10_000 })
        ));
        assert!(acks.due().is_none());
        acks.received(4095);
        assert!(acks.due().is_none());
        acks.received(1);
        assert!(matches!(
            acks.due(),
            Some(Message::Acknowledgement { sequence: 14_096 })
        ));
        assert_eq!(acks.sent(), 2);
    }

    #[test]
    fn the_sequence_wraps_at_2_pow_32() {
        let mut acks = Acks {
            window: 1,
            ..Acks::default()
        };
        acks.received((1usize << 32) + 5);
        assert!(matches!(
            acks.due(),
            Some(Message::Acknowledgement { sequence: 5 })
        ));
    }
}
