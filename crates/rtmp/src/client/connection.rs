//! The tokio side of the client: a TCP socket driving a [`ClientSession`].
//!
//! Each connection plays one role, chosen after connect: [`Client::publish`] gives a
//! [`Publisher`], [`Client::play`] a [`Player`]. No task is spawned: the publisher picks up
//! what the server sends (acknowledgements, pings, a kick) without blocking whenever it
//! flushes, and the player reads as it is asked for media.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amf::Amf0Value;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::session::{
    ClientConfig, ClientEvent, ClientSession, ClientSessionError, MediaKind, MediaMessage, Status,
};
use super::url::{RtmpUrl, UrlError};
use crate::handshake::{ClientHandshake, HandshakeError};

/// Time allowed for TCP connect, the handshake, and each command's reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Media bytes a publisher buffers before writing on its own; one video frame or several
/// audio frames, so that a burst becomes one vectored write.
pub const DEFAULT_WRITE_BUFFER: usize = 64 * 1024;

/// Slices handed to one `write_vectored` call (Linux caps iovecs at 1024; this is plenty).
const MAX_IOVECS: usize = 64;

/// Bytes read in one go.
const READ_CHUNK: usize = 64 * 1024;

/// Most bytes a publisher drains from the socket per flush: a server flooding a publisher
/// must not make `send` loop forever.
const MAX_PUBLISHER_READ: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// TCP connect, handshake and command-reply time-out.
    pub timeout: Duration,
    /// Time a player waits for any byte before giving up; None = wait as long as it takes
    /// (a live stream may legitimately go quiet).
    pub idle_timeout: Option<Duration>,
    /// Complex (digest) handshake, which some servers require before serving H.264/AAC.
    pub complex_handshake: bool,
    pub flash_ver: String,
    pub chunk_size: u32,
    pub buffer_ms: u32,
    pub play_start: f64,
    pub write_buffer: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: DEFAULT_TIMEOUT,
            idle_timeout: None,
            complex_handshake: true,
            flash_ver: super::session::DEFAULT_FLASH_VER.into(),
            chunk_size: super::session::DEFAULT_CHUNK_SIZE,
            buffer_ms: super::session::DEFAULT_BUFFER_MS,
            play_start: -2.0,
            write_buffer: DEFAULT_WRITE_BUFFER,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("session: {0}")]
    Session(#[from] ClientSessionError),
    /// The server said no (connect rejected, NetStream.Publish.BadName, Play.StreamNotFound...).
    #[error("server refused: {code}: {description}")]
    Rejected { code: String, description: String },
    #[error("connection closed by the server {0}")]
    Closed(&'static str),
}

impl ClientError {
    fn io(context: &'static str) -> impl FnOnce(io::Error) -> ClientError {
        move |source| ClientError::Io { context, source }
    }

    fn rejected(status: Status) -> ClientError {
        ClientError::Rejected {
            code: status.code,
            description: status.description,
        }
    }
}

/// Socket, session and read buffer: what every role shares.
struct Conn {
    stream: TcpStream,
    session: ClientSession,
    read_buf: BytesMut,
    options: ClientOptions,
}

impl Conn {
    async fn write_output(&mut self) -> Result<(), ClientError> {
        if let Some(out) = self.session.take_output() {
            self.stream
                .write_all(&out)
                .await
                .map_err(ClientError::io("writing"))?;
        }
        Ok(())
    }

    /// Next event, reading as needed; Ok(None) when the server closed the connection.
    async fn next_event(&mut self) -> Result<Option<ClientEvent>, ClientError> {
        loop {
            if let Some(ev) = self.session.feed(&mut self.read_buf)? {
                return Ok(Some(ev));
            }
            // Acks and ping replies go out before we block on the next read.
            self.write_output().await?;
            self.read_buf.reserve(READ_CHUNK);
            let read = self.stream.read_buf(&mut self.read_buf);
            let n = match self.options.idle_timeout {
                Some(t) => tokio::time::timeout(t, read)
                    .await
                    .map_err(|_| ClientError::Timeout("no data from the server"))?,
                None => read.await,
            }
            .map_err(ClientError::io("reading"))?;
            if n == 0 {
                return Ok(None);
            }
        }
    }

    /// Waits (bounded by the command time-out) for the event `want` picks, turning refusals
    /// into [`ClientError::Rejected`].
    async fn wait_for<T>(
        &mut self,
        what: &'static str,
        mut want: impl FnMut(&ClientEvent) -> Option<T>,
    ) -> Result<T, ClientError> {
        self.write_output().await?;
        let timeout = self.options.timeout;
        let wait = async {
            loop {
                match self.next_event().await? {
                    None => return Err(ClientError::Closed(what)),
                    Some(ClientEvent::Error { status, .. }) => {
                        return Err(ClientError::rejected(status))
                    }
                    Some(ev) => {
                        if let Some(v) = want(&ev) {
                            return Ok(v);
                        }
                    }
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout(what))?
    }
}

/// A connected (handshake and `connect` done) RTMP client, about to publish or play.
pub struct Client {
    conn: Conn,
    url: RtmpUrl,
    server_info: Amf0Value,
}

impl Client {
    /// Connects with default options (10 s time-outs, complex handshake).
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, ClientOptions::default()).await
    }

    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let url = RtmpUrl::parse(url)?;
        let timeout = options.timeout;
        let stream =
            tokio::time::timeout(timeout, TcpStream::connect((url.host.as_str(), url.port)))
                .await
                .map_err(|_| ClientError::Timeout("TCP connect"))?
                .map_err(ClientError::io("TCP connect"))?;
        // We batch writes ourselves; Nagle would only add latency to small audio frames.
        stream
            .set_nodelay(true)
            .map_err(ClientError::io("setting TCP_NODELAY"))?;

        let mut config = ClientConfig::new(url.app.clone(), url.tc_url.clone());
        config.flash_ver = options.flash_ver.clone();
        config.chunk_size = options.chunk_size;
        config.buffer_ms = options.buffer_ms;
        config.play_start = options.play_start;
        let mut conn = Conn {
            stream,
            session: ClientSession::new(config),
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            options,
        };
        tokio::time::timeout(timeout, handshake(&mut conn))
            .await
            .map_err(|_| ClientError::Timeout("handshake"))??;

        conn.session.connect()?;
        let server_info = conn
            .wait_for("connect", |ev| match ev {
                ClientEvent::Connected { info } => Some(info.clone()),
                _ => None,
            })
            .await?;
        Ok(Client {
            conn,
            url,
            server_info,
        })
    }

    pub fn url(&self) -> &RtmpUrl {
        &self.url
    }

    /// The info object of the server's connect reply (`data.srs_server`, version...).
    pub fn server_info(&self) -> &Amf0Value {
        &self.server_info
    }

    /// Publishes the URL's stream; returns once the server said NetStream.Publish.Start.
    pub async fn publish(mut self) -> Result<Publisher, ClientError> {
        self.conn.session.publish(&self.url.stream)?;
        let stream_id = self
            .conn
            .wait_for("publish", |ev| match ev {
                ClientEvent::Published { stream_id } => Some(*stream_id),
                _ => None,
            })
            .await?;
        Ok(Publisher {
            conn: self.conn,
            stream_id,
            queue: VecDeque::new(),
            queued_bytes: 0,
            scratch: Vec::new(),
        })
    }

    /// Plays the URL's stream; returns once the server said NetStream.Play.Start.
    pub async fn play(mut self) -> Result<Player, ClientError> {
        self.conn.session.play(&self.url.stream)?;
        let stream_id = self
            .conn
            .wait_for("play", |ev| match ev {
                ClientEvent::Playing { stream_id } => Some(*stream_id),
                _ => None,
            })
            .await?;
        Ok(Player {
            conn: self.conn,
            stream_id,
            ended: false,
        })
    }
}

async fn handshake(conn: &mut Conn) -> Result<(), ClientError> {
    // Filler randomness only has to differ between connections; see handshake.rs.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let port = conn
        .stream
        .local_addr()
        .map(|a| u64::from(a.port()))
        .unwrap_or(0);
    let mut hs = ClientHandshake::new(conn.options.complex_handshake, nanos ^ (port << 48), 0);
    let mut out = Vec::new();
    hs.start(&mut out);
    loop {
        if !out.is_empty() {
            conn.stream
                .write_all(&out)
                .await
                .map_err(ClientError::io("writing handshake"))?;
            out.clear();
        }
        if hs.process(&mut conn.read_buf, &mut out)? {
            if !out.is_empty() {
                conn.stream
                    .write_all(&out)
                    .await
                    .map_err(ClientError::io("writing handshake"))?;
            }
            return Ok(());
        }
        conn.read_buf.reserve(READ_CHUNK);
        let n = conn
            .stream
            .read_buf(&mut conn.read_buf)
            .await
            .map_err(ClientError::io("reading handshake"))?;
        if n == 0 {
            return Err(ClientError::Closed("during the handshake"));
        }
    }
}

/// A publishing connection. Media is buffered and written in vectored batches: call
/// [`Publisher::flush`] when latency matters more than batching (e.g. after each frame of a
/// real-time source), and [`Publisher::close`] at the end.
pub struct Publisher {
    conn: Conn,
    stream_id: u32,
    queue: VecDeque<Bytes>,
    queued_bytes: usize,
    scratch: Vec<Bytes>,
}

impl Publisher {
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// Queues one message (metadata: an FLV script tag body such as `onMetaData`), writing
    /// once the buffer holds [`ClientOptions::write_buffer`] bytes.
    pub async fn send(
        &mut self,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<(), ClientError> {
        self.conn
            .session
            .encode_media(kind, timestamp, &payload, &mut self.scratch);
        for b in self.scratch.drain(..) {
            self.queued_bytes += b.len();
            self.queue.push_back(b);
        }
        if self.queued_bytes >= self.conn.options.write_buffer {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes everything queued, after handling what the server sent meanwhile.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.poll_incoming()?;
        if let Some(out) = self.conn.session.take_output() {
            self.queue.push_back(out);
        }
        write_queue(&mut self.conn.stream, &mut self.queue).await?;
        self.queued_bytes = 0;
        Ok(())
    }

    /// Reads whatever has already arrived, without waiting: acks and pings get answered, and
    /// a server that kicked us or closed the socket is noticed on the next send.
    fn poll_incoming(&mut self) -> Result<(), ClientError> {
        let mut total = 0;
        while total < MAX_PUBLISHER_READ {
            self.conn.read_buf.reserve(READ_CHUNK);
            match self.conn.stream.try_read_buf(&mut self.conn.read_buf) {
                Ok(0) => return Err(ClientError::Closed("while publishing")),
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(ClientError::io("reading")(e)),
            }
            while let Some(ev) = self.conn.session.feed(&mut self.conn.read_buf)? {
                if let ClientEvent::Error { status, .. } = ev {
                    return Err(ClientError::rejected(status));
                }
            }
        }
        Ok(())
    }

    /// Flushes, then unpublishes (FCUnpublish, deleteStream) and closes the connection.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.flush().await?;
        self.conn.session.close()?;
        self.conn.write_output().await?;
        self.conn
            .stream
            .shutdown()
            .await
            .map_err(ClientError::io("closing"))
    }
}

/// Writes the queue with as few syscalls as the kernel allows.
async fn write_queue(
    stream: &mut TcpStream,
    queue: &mut VecDeque<Bytes>,
) -> Result<(), ClientError> {
    while !queue.is_empty() {
        let written = {
            let slices: Vec<IoSlice<'_>> = queue
                .iter()
                .take(MAX_IOVECS)
                .map(|b| IoSlice::new(b))
                .collect();
            stream
                .write_vectored(&slices)
                .await
                .map_err(ClientError::io("writing media"))?
        };
        if written == 0 {
            return Err(ClientError::Closed("while writing media"));
        }
        let mut left = written;
        while left > 0 {
            let Some(front) = queue.front_mut() else {
                break;
            };
            if front.len() <= left {
                left -= front.len();
                queue.pop_front();
            } else {
                front.advance(left);
                left = 0;
            }
        }
    }
    Ok(())
}

/// A playing connection.
pub struct Player {
    conn: Conn,
    stream_id: u32,
    ended: bool,
}

impl Player {
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// Next audio/video/metadata message; Ok(None) once the stream ended (UnpublishNotify,
    /// Play.Stop, Stream EOF) or the server closed the connection. Not cancel-safe while it
    /// writes an acknowledgement; dropping the player after a cancelled call is fine.
    pub async fn recv(&mut self) -> Result<Option<MediaMessage>, ClientError> {
        while !self.ended {
            match self.conn.next_event().await? {
                None => self.ended = true,
                Some(ClientEvent::Media(m)) => return Ok(Some(m)),
                Some(ClientEvent::Status(s)) if s.ends_playback() => self.ended = true,
                Some(ClientEvent::StreamEof { .. }) => self.ended = true,
                Some(ClientEvent::Error { status, .. }) => {
                    return Err(ClientError::rejected(status))
                }
                Some(_) => {}
            }
        }
        Ok(None)
    }

    /// Sends deleteStream and closes the connection.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.conn.session.close()?;
        self.conn.write_output().await?;
        self.conn
            .stream
            .shutdown()
            .await
            .map_err(ClientError::io("closing"))
    }
}
