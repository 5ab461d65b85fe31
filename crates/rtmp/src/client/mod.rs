//! The RTMP client: what the bench, forward and edge are built on (srs-librtmp's role).
//!
//! [`ClientSession`] is the sans-IO protocol state machine (connect, publish, play,
//! acknowledgements, pings), testable in memory against [`crate::server::ServerSession`].
//! `Client` (with the `client` cargo feature) glues it to a tokio `TcpStream`:
//!
//! ```no_run
//! # async fn demo(payload: bytes::Bytes) -> Result<(), rtmp::client::ClientError> {
//! use rtmp::client::{Client, MediaKind};
//! let mut publisher = Client::connect("rtmp://127.0.0.1/live/test").await?.publish().await?;
//! publisher.send(MediaKind::Video, 0, payload).await?;
//! publisher.close().await?;
//!
//! let mut player = Client::connect("rtmp://127.0.0.1/live/test").await?.play().await?;
//! while let Some(msg) = player.recv().await? {
//!     println!("{:?} {} {}", msg.kind, msg.timestamp, msg.payload.len());
//! }
//! # Ok(()) }
//! ```

#[cfg(feature = "client")]
mod connection;
mod session;
mod stream;
mod url;

#[cfg(feature = "client")]
pub use connection::{
    Client, ClientError, ClientOptions, Player, Publisher, DEFAULT_MAX_REDIRECTS, DEFAULT_TIMEOUT,
    DEFAULT_WRITE_BUFFER,
};
pub use session::{
    ClientConfig, ClientEvent, ClientSession, ClientSessionError, MediaKind, MediaMessage,
    MediaRef, Redirect, Status, DEFAULT_BUFFER_MS, DEFAULT_CHUNK_SIZE, DEFAULT_FLASH_VER,
};
pub use url::{RtmpUrl, UrlError, DEFAULT_PORT, DEFAULT_TLS_PORT};
