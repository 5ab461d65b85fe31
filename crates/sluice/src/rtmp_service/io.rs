//! Socket helpers: vectored writes of shared buffers.

use std::io::{self, IoSlice};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Most buffers handed to one `writev` (Linux's IOV_MAX is 1024). The slice array
/// lives in every player's task while it writes, so it is kept small: 32 covers a
/// steady-state batch (a few frames per `mw_latency`) in one call.
const MAX_IOV: usize = 32;

/// Writes every buffer in `bufs`, many per system call, then clears it.
/// The buffers are shared media payloads and per-player headers: nothing is
/// copied into a contiguous buffer first.
pub async fn write_all_bufs<W: AsyncWrite + Unpin>(
    w: &mut W,
    bufs: &mut Vec<Bytes>,
) -> io::Result<u64> {
    let mut first = 0;
    let mut written = 0u64;
    while first < bufs.len() {
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let mut n_iov = 0;
        for b in bufs[first..].iter().filter(|b| !b.is_empty()).take(MAX_IOV) {
            iov[n_iov] = IoSlice::new(b);
            n_iov += 1;
        }
        if n_iov == 0 {
            break;
        }
        let mut n = w.write_vectored(&iov[..n_iov]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        written += n as u64;
        while n > 0 && first < bufs.len() {
            let len = bufs[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                bufs[first].advance(n);
                n = 0;
            }
        }
        // Skip empty buffers so the loop condition sees real work only.
        while first < bufs.len() && bufs[first].is_empty() {
            first += 1;
        }
    }
    bufs.clear();
    Ok(written)
}

/// Writes one contiguous buffer.
pub async fn write_all<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> io::Result<()> {
    w.write_all(data).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_everything_in_order() {
        let mut bufs: Vec<Bytes> = (0..300u32)
            .map(|i| Bytes::from(vec![(i % 251) as u8; (i % 7) as usize]))
            .collect();
        let expected: Vec<u8> = bufs.iter().flat_map(|b| b.to_vec()).collect();
        let (mut a, mut b) = tokio::io::duplex(17); // tiny pipe: many partial writes
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
                .await
                .unwrap();
            got
        });
        let n = write_all_bufs(&mut a, &mut bufs).await.unwrap();
        drop(a);
        assert_eq!(n as usize, expected.len());
        assert!(bufs.is_empty());
        assert_eq!(reader.await.unwrap(), expected);
    }
}
