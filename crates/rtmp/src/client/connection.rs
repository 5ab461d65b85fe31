//! The tokio side of the client: a TCP socket driving a [`ClientSession`].
//!
//! Each connection plays one role, chosen after connect: [`Client::publish`] gives a
//! [`Publisher`], [`Client::play`] a [`Player`]. No task is spawned: the publisher picks up
//! what the server sends (acknowledgements, pings, a kick) without blocking whenever it
//! flushes, and the player reads as it is asked for media.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amf::Amf0Value;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::stream::Stream;

use super::session::{
    ClientConfig, ClientEvent, ClientSession, ClientSessionError, MediaKind, MediaMessage,
    MediaRef, Status,
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
    /// Required for `rtmps://` URLs: trust roots and crypto provider of the TLS
    /// client. Without it an `rtmps://` connect fails with [`ClientError::Tls`].
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
    /// RTMP 302 redirects [`Client::play_url`] follows before giving up.
    pub max_redirects: u8,
}

/// Redirects followed by default: enough for origin → origin, bounded against loops.
pub const DEFAULT_MAX_REDIRECTS: u8 = 3;

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
            #[cfg(feature = "tls")]
            tls: None,
            max_redirects: DEFAULT_MAX_REDIRECTS,
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
    #[error("TLS: {0}")]
    Tls(String),
    /// SRS's RTMP 302: the server sent us to another URL (followed by [`Client::play_url`]).
    #[error("redirected to {0}")]
    Redirected(String),
    #[error("more than {0} redirects")]
    TooManyRedirects(u8),
}

impl ClientError {
    fn io(context: &'static str) -> impl FnOnce(io::Error) -> ClientError {
        move |source| ClientError::Io { context, source }
    }

    fn rejected(status: Status) -> ClientError {
        if let Some(r) = status.redirect {
            return ClientError::Redirected(match r {
                super::session::Redirect::Url(u) | super::session::Redirect::TcUrl(u) => u,
            });
        }
        ClientError::Rejected {
            code: status.code,
            description: status.description,
        }
    }
}

/// Socket, session and read buffer: what every role shares.
struct Conn {
    stream: Stream,
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
            if self.read_more().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// One read into `read_buf` (0 = the server closed the connection), bounded by the
    /// idle time-out.
    async fn read_more(&mut self) -> Result<usize, ClientError> {
        self.read_buf.reserve(READ_CHUNK);
        let read = self.stream.read_buf(&mut self.read_buf);
        match self.options.idle_timeout {
            Some(t) => tokio::time::timeout(t, read)
                .await
                .map_err(|_| ClientError::Timeout("no data from the server"))?,
            None => read.await,
        }
        .map_err(ClientError::io("reading"))
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
        let stream = secure(stream, &url, &options).await?;

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

    /// Connects and plays `url`, following RTMP 302 redirects (SRS's `ex.redirect2` /
    /// `ex.redirect`, sent to connect or play) up to `options.max_redirects` hops.
    pub async fn play_url(url: &str, options: ClientOptions) -> Result<Player, ClientError> {
        let mut url = url.to_string();
        let mut hops = 0u8;
        loop {
            let stream = RtmpUrl::parse(&url)?.stream;
            let played = match Client::connect_with(&url, options.clone()).await {
                Ok(c) => c.play().await,
                Err(e) => Err(e),
            };
            match played {
                Err(ClientError::Redirected(to)) => {
                    if hops >= options.max_redirects {
                        return Err(ClientError::TooManyRedirects(options.max_redirects));
                    }
                    hops += 1;
                    url = redirect_target(&to, &stream)?;
                }
                other => return other,
            }
        }
    }

    /// The info object of the server's connect reply (`data.srs_server`, version...).
    pub fn server_info(&self) -> &Amf0Value {
        &self.server_info
    }

    /// Sends a packet of SRS's bandwidth test (see [`crate::bandcheck`]); returns the bytes
    /// written (chunk headers included).
    pub async fn bandcheck_send(
        &mut self,
        packet: &crate::bandcheck::Packet,
    ) -> Result<usize, ClientError> {
        self.conn.session.send_bandcheck(packet)?;
        let Some(out) = self.conn.session.take_output() else {
            return Ok(0);
        };
        self.conn
            .stream
            .write_all(&out)
            .await
            .map_err(ClientError::io("writing"))?;
        Ok(out.len())
    }

    /// The next packet of SRS's bandwidth test from the server, skipping anything else
    /// (within the command time-out); Ok(None) when the server closed the connection.
    pub async fn bandcheck_recv(
        &mut self,
    ) -> Result<Option<crate::bandcheck::Packet>, ClientError> {
        self.conn.write_output().await?;
        let timeout = self.conn.options.timeout;
        let wait = async {
            loop {
                match self.conn.next_event().await? {
                    None => return Ok(None),
                    Some(ClientEvent::Bandcheck(p)) => return Ok(Some(p)),
                    Some(ClientEvent::Error { status, .. }) => {
                        return Err(ClientError::rejected(status))
                    }
                    Some(_) => {}
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout("bandcheck packet"))?
    }

    /// Bytes read from the server so far (after the handshake).
    pub fn bytes_in(&self) -> u64 {
        self.conn.session.bytes_in()
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
            // Media may have arrived with Play.Start.
            unread: true,
            readable: false,
        })
    }
}

/// The URL a redirect names: a full RTMP URL (`redirect2`) as is, a tcUrl (`redirect`,
/// which has only the app) with the stream we asked for added.
fn redirect_target(to: &str, stream: &str) -> Result<String, ClientError> {
    let parsed = RtmpUrl::parse(to);
    match parsed {
        Ok(u) if !u.stream.is_empty() => Ok(to.to_string()),
        _ => {
            let joined = format!("{}/{stream}", to.trim_end_matches('/'));
            RtmpUrl::parse(&joined)?;
            Ok(joined)
        }
    }
}

/// TLS over the socket for `rtmps://`, within the connect time-out.
#[cfg(feature = "tls")]
async fn secure(
    tcp: TcpStream,
    url: &RtmpUrl,
    options: &ClientOptions,
) -> Result<Stream, ClientError> {
    if !url.secure {
        return Ok(Stream::Tcp(tcp));
    }
    let config = options
        .tls
        .clone()
        .ok_or_else(|| ClientError::Tls("rtmps:// needs a TLS client config".into()))?;
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(url.host.clone())
        .map_err(|e| ClientError::Tls(format!("bad server name {:?}: {e}", url.host)))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let tls = tokio::time::timeout(options.timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| ClientError::Timeout("TLS handshake"))?
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    Ok(Stream::Tls(Box::new(tls)))
}

#[cfg(not(feature = "tls"))]
async fn secure(tcp: TcpStream, url: &RtmpUrl, _: &ClientOptions) -> Result<Stream, ClientError> {
    if url.secure {
        return Err(ClientError::Tls(
            "rtmps:// needs the rtmp crate's `tls` feature".into(),
        ));
    }
    Ok(Stream::Tcp(tcp))
}

async fn handshake(conn: &mut Conn) -> Result<(), ClientError> {
    // Filler randomness only has to differ between connections; see handshake.rs.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let port = conn
        .stream
        .tcp()
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
            match self.conn.stream.read_now(&mut self.conn.read_buf) {
                Ok(Some(0)) => return Err(ClientError::Closed("while publishing")),
                Ok(Some(n)) => total += n,
                Ok(None) => break,
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
async fn write_queue(stream: &mut Stream, queue: &mut VecDeque<Bytes>) -> Result<(), ClientError> {
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

/// A playing connection. Read it either message by message ([`Player::recv`]) or batch by
/// batch ([`Player::read_batch`] then [`Player::drain_batch`]).
pub struct Player {
    conn: Conn,
    stream_id: u32,
    ended: bool,
    /// The read buffer may hold complete messages not handed out yet, so `read_batch` must
    /// not block before `drain_batch` has looked at them.
    unread: bool,
    /// `read_batch` saw the socket readable: `drain_batch` reads.
    readable: bool,
}

thread_local! {
    /// Where [`Player::drain_batch`] reads to: one buffer per thread instead of one per player.
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Feeds `buf` to the session until it needs more bytes or the stream ends; media goes to
/// `on_media`, the rest is handled as [`Player::recv`] handles it.
fn feed_batch(
    session: &mut ClientSession,
    buf: &mut BytesMut,
    ended: &mut bool,
    on_media: &mut impl FnMut(MediaRef<'_>),
) -> Result<(), ClientError> {
    while !*ended {
        match session.feed_with(buf, on_media)? {
            None => break,
            Some(ClientEvent::Status(s)) if s.ends_playback() => *ended = true,
            Some(ClientEvent::StreamEof { .. }) => *ended = true,
            Some(ClientEvent::Error { status, .. }) => return Err(ClientError::rejected(status)),
            Some(_) => {}
        }
    }
    Ok(())
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
                Some(ClientEvent::Media(m)) => {
                    self.unread = true;
                    return Ok(Some(m));
                }
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

    /// Waits until the server's next bytes can be read, after sending pending
    /// acknowledgements and ping replies; [`Player::drain_batch`] then reads and decodes
    /// them. The split lets a caller do per-batch work (take a lock, read the clock) once
    /// per read instead of once per message. Returns at once while bytes already read have
    /// not been drained. Ok(false) once the stream ended or the server closed the
    /// connection. Not cancel-safe while it writes, like `recv`.
    pub async fn read_batch(&mut self) -> Result<bool, ClientError> {
        if self.ended {
            return Ok(false);
        }
        if self.unread || self.readable {
            return Ok(true);
        }
        self.conn.write_output().await?;
        // The single-waiter form: `readable()` would link (and on drop unlink) a waiter
        // under the socket's lock on every wait.
        let stream = &self.conn.stream;
        let readable = std::future::poll_fn(|cx| stream.poll_read_ready(cx));
        match self.conn.options.idle_timeout {
            Some(t) => tokio::time::timeout(t, readable)
                .await
                .map_err(|_| ClientError::Timeout("no data from the server"))?,
            None => readable.await,
        }
        .map_err(ClientError::io("reading"))?;
        self.readable = true;
        Ok(true)
    }

    /// Reads what [`Player::read_batch`] found waiting (one non-blocking read) and hands
    /// every complete audio/video/metadata message to `on_media`, in order, with the payload
    /// borrowed from the read buffer. Handles the rest as [`Player::recv`] does: stops at the
    /// end of the stream, fails on a refusal.
    ///
    /// The bytes land in a buffer shared by all players of the thread, kept hot in cache,
    /// and only an unfinished chunk is copied to the player's own buffer: with thousands of
    /// players, one read buffer each would make every read and decode a cache miss.
    pub fn drain_batch(
        &mut self,
        mut on_media: impl FnMut(MediaRef<'_>),
    ) -> Result<(), ClientError> {
        if std::mem::take(&mut self.unread) {
            let conn = &mut self.conn;
            feed_batch(
                &mut conn.session,
                &mut conn.read_buf,
                &mut self.ended,
                &mut on_media,
            )?;
        }
        if !std::mem::take(&mut self.readable) || self.ended {
            return Ok(());
        }
        let conn = &mut self.conn;
        if conn.read_buf.is_empty() {
            let shared = SCRATCH.with(|cell| {
                // Only a caller draining one player from inside another's callback finds it
                // taken; that player reads into its own buffer instead.
                let Ok(mut scratch) = cell.try_borrow_mut() else {
                    return None;
                };
                scratch.clear();
                scratch.reserve(READ_CHUNK);
                let r = match conn.stream.read_now(&mut scratch) {
                    Ok(Some(0)) => {
                        self.ended = true;
                        Ok(())
                    }
                    Ok(Some(_)) => feed_batch(
                        &mut conn.session,
                        &mut scratch,
                        &mut self.ended,
                        &mut on_media,
                    ),
                    Ok(None) => Ok(()),
                    Err(e) => Err(ClientError::io("reading")(e)),
                };
                // An unfinished chunk (or what follows the end of the stream) waits in the
                // player's own buffer for the next read.
                conn.read_buf.extend_from_slice(&scratch);
                scratch.clear();
                Some(r)
            });
            if let Some(r) = shared {
                return r;
            }
        }
        conn.read_buf.reserve(READ_CHUNK);
        match conn
            .stream
            .read_now(&mut conn.read_buf)
            .map_err(ClientError::io("reading"))?
        {
            Some(0) => {
                self.ended = true;
                Ok(())
            }
            Some(_) => feed_batch(
                &mut conn.session,
                &mut conn.read_buf,
                &mut self.ended,
                &mut on_media,
            ),
            None => Ok(()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::ServerHandshake;
    use crate::server::{Event, ServerConfig, ServerSession};
    use tokio::net::TcpListener;

    fn frames() -> Vec<(MediaKind, u32, Bytes)> {
        (0..120u32)
            .map(|i| {
                let (kind, len) = if i % 3 == 0 {
                    (MediaKind::Video, 200 + (i as usize * 997) % 90_000)
                } else {
                    (MediaKind::Audio, 20 + i as usize % 300)
                };
                let payload: Bytes = (0..len).map(|b| (b as u32 ^ i) as u8).collect();
                (kind, i * 20, payload)
            })
            .collect()
    }

    /// Serves one player: `frames()` written in uneven pieces with pauses, so that reads end
    /// inside chunks, then UnpublishNotify.
    async fn serve(listener: TcpListener) {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = BytesMut::new();
        let mut hs = ServerHandshake::new(5, 0);
        let mut out = Vec::new();
        loop {
            let done = hs.process(&mut buf, &mut out).unwrap();
            sock.write_all(&out).await.unwrap();
            out.clear();
            if done {
                break;
            }
            assert!(sock.read_buf(&mut buf).await.unwrap() > 0);
        }
        let mut s = ServerSession::new(ServerConfig::default());
        loop {
            while let Some(ev) = s.feed(&mut buf).unwrap() {
                match ev {
                    Event::Connect(_) => s.accept_connect(),
                    Event::Play {
                        stream_id, name, ..
                    } => {
                        s.accept_play(stream_id, &name, true);
                        let mut wire = s.take_output().map(|b| b.to_vec()).unwrap_or_default();
                        let mut parts = Vec::new();
                        for (kind, ts, payload) in frames() {
                            s.encode_media(kind, stream_id, ts, &payload, &mut parts);
                        }
                        s.status(stream_id, "status", "NetStream.Play.UnpublishNotify", "");
                        parts.extend(s.take_output());
                        for p in parts {
                            wire.extend_from_slice(&p);
                        }
                        let mut pos = 0;
                        let mut step = 1;
                        while pos < wire.len() {
                            let end = wire.len().min(pos + step);
                            sock.write_all(&wire[pos..end]).await.unwrap();
                            pos = end;
                            step = step * 7 % 20_011 + 1;
                            tokio::time::sleep(Duration::from_micros(200)).await;
                        }
                    }
                    _ => {}
                }
            }
            if let Some(b) = s.take_output() {
                sock.write_all(&b).await.unwrap();
            }
            match sock.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    async fn player() -> Player {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(serve(listener));
        Client::connect(&format!("rtmp://127.0.0.1:{port}/live/x"))
            .await
            .unwrap()
            .play()
            .await
            .unwrap()
    }

    type Got = Vec<(MediaKind, u32, Bytes)>;

    fn collect(got: &mut Got) -> impl FnMut(MediaRef<'_>) + '_ {
        |m| got.push((m.kind, m.timestamp, Bytes::copy_from_slice(m.payload)))
    }

    #[tokio::test]
    async fn batches_carry_the_same_messages_as_recv() {
        let mut one_by_one = player().await;
        let mut a = Vec::new();
        while let Some(m) = one_by_one.recv().await.unwrap() {
            a.push((m.kind, m.timestamp, m.payload));
        }
        assert_eq!(a, frames());

        let mut batched = player().await;
        let mut b = Vec::new();
        let mut batches = 0;
        while batched.read_batch().await.unwrap() {
            batched.drain_batch(collect(&mut b)).unwrap();
            batches += 1;
        }
        assert_eq!(b, frames());
        assert!(batches > 1);
        // The end is sticky, as with recv.
        assert!(!batched.read_batch().await.unwrap());
        assert!(batched.recv().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn batches_mix_with_recv_and_survive_a_busy_scratch() {
        let mut p = player().await;
        let mut got = Vec::new();
        let mut turn = 0;
        loop {
            turn += 1;
            if turn % 3 == 0 {
                match p.recv().await.unwrap() {
                    Some(m) => got.push((m.kind, m.timestamp, m.payload)),
                    None => break,
                }
                continue;
            }
            if !p.read_batch().await.unwrap() {
                break;
            }
            if turn % 3 == 1 {
                // As if drained from inside another player's callback.
                SCRATCH.with(|cell| {
                    let _busy = cell.borrow_mut();
                    p.drain_batch(collect(&mut got)).unwrap();
                });
            } else {
                p.drain_batch(collect(&mut got)).unwrap();
            }
        }
        assert_eq!(got, frames());
    }
}
