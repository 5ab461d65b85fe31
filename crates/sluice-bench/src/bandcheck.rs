//! `sluice-bench bandcheck rtmp://HOST[:PORT]/APP?key=KEY`: the client side of SRS's RTMP
//! bandwidth test (what SRS's `srs_bandwidth_check` tool did), against any server that
//! runs it (sluice, SRS). Prints play and publish kbps as the server measured them, and
//! the round-trip time of one request/answer step of the exchange.

use std::time::{Duration, Instant};

use rtmp::bandcheck::{self, Packet, Report, Step};
use rtmp::client::{Client, ClientError, ClientOptions};

/// How long each step may take (the server's samples are 3 s).
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum BandcheckError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the server closed the connection while the client waited for {0}")]
    Closed(&'static str),
    #[error("bad URL {0:?}: expected rtmp://HOST[:PORT]/APP?key=KEY")]
    Url(String),
}

/// What one test gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// As the server reported them (`onSrsBandCheckFinished`).
    pub play_kbps: u64,
    pub publish_kbps: u64,
    pub report: Report,
    /// The server's `limit_kbps`.
    pub limit_kbps: u64,
    /// TCP connect, handshake and RTMP connect.
    pub connect_ms: u64,
    /// From our `onSrsBandCheckStoppedPlayBytes` to the server's next step: one round trip
    /// with no data queued either way.
    pub rtt_ms: f64,
    /// Bytes of play data we received (our own count, for comparison).
    pub play_bytes_seen: u64,
    pub elapsed_ms: u64,
}

impl Outcome {
    pub fn to_text(&self) -> String {
        format!(
            "play: {} kbps ({} bytes in {} ms)\npublish: {} kbps ({} bytes in {} ms)\nlimit: {} kbps\nrtt: {:.1} ms\nconnect: {} ms\nelapsed: {} ms\n",
            self.play_kbps,
            self.report.play.bytes,
            self.report.play.duration_ms,
            self.publish_kbps,
            self.report.publish.bytes,
            self.report.publish.duration_ms,
            self.limit_kbps,
            self.rtt_ms,
            self.connect_ms,
            self.elapsed_ms
        )
    }

    /// One JSON line, with the field names of SRS's srs_bandwidth_check where it had them.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "code": 0,
            "play_kbps": self.play_kbps,
            "publish_kbps": self.publish_kbps,
            "play_bytes": self.report.play.bytes,
            "publish_bytes": self.report.publish.bytes,
            "play_time": self.report.play.duration_ms,
            "publish_time": self.report.publish.duration_ms,
            "start_time": self.report.start_time,
            "end_time": self.report.end_time,
            "limit_kbps": self.limit_kbps,
            "rtt_ms": self.rtt_ms,
            "connect_ms": self.connect_ms,
            "elapsed_ms": self.elapsed_ms,
        })
        .to_string()
    }
}

/// `rtmp://h/app?key=K` names no stream; our client's URL wants one, so the app and its
/// query become the connect's app and tcUrl, and a dummy stream name is never used.
fn client_url(url: &str) -> Result<String, BandcheckError> {
    let rest = url
        .strip_prefix("rtmp://")
        .ok_or_else(|| BandcheckError::Url(url.into()))?;
    let path = rest
        .split_once('/')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| BandcheckError::Url(url.into()))?;
    if path.split('?').next().is_some_and(|app| app.contains('/')) {
        // rtmp://h/app/stream?key=K: fine as it is.
        return Ok(url.into());
    }
    Ok(format!("{url}/bandcheck"))
}

async fn expect(c: &mut Client, want: Step) -> Result<Packet, BandcheckError> {
    loop {
        match c.bandcheck_recv().await? {
            None => return Err(BandcheckError::Closed(want.name())),
            Some(p) if p.step == want => return Ok(p),
            Some(_) => {}
        }
    }
}

/// Runs one test against `url`.
pub async fn run(url: &str) -> Result<Outcome, BandcheckError> {
    let began = Instant::now();
    let options = ClientOptions {
        timeout: STEP_TIMEOUT,
        ..ClientOptions::default()
    };
    let mut c = Client::connect_with(&client_url(url)?, options).await?;
    let connect_ms = began.elapsed().as_millis() as u64;

    // Play: the server sends, we count.
    let start = expect(&mut c, Step::StartPlay).await?;
    let limit_kbps = start.number("limit_kbps").unwrap_or(0.0).max(0.0) as u64;
    c.bandcheck_send(&Packet::new(Step::StartingPlay)).await?;
    let before = c.bytes_in();
    expect(&mut c, Step::StopPlay).await?;
    let play_bytes_seen = c.bytes_in().saturating_sub(before);
    c.bandcheck_send(&Packet::new(Step::StoppedPlay)).await?;
    let asked = Instant::now();

    // Publish: we send for the server's duration, no faster than its limit.
    let start = expect(&mut c, Step::StartPublish).await?;
    let rtt_ms = asked.elapsed().as_secs_f64() * 1000.0;
    let duration_ms = start
        .number("duration_ms")
        .filter(|d| d.is_finite() && *d > 0.0)
        .map_or(bandcheck::SAMPLE_DURATION_MS, |d| d.min(60_000.0) as u64);
    let limit = start
        .number("limit_kbps")
        .filter(|v| v.is_finite() && *v > 0.0)
        .map_or(0, |v| v.min(f64::from(u32::MAX)) as u32);
    c.bandcheck_send(&Packet::new(Step::StartingPublish))
        .await?;
    let sending = Instant::now();
    let mut sent: u64 = 0;
    let mut entries = 1;
    while (sending.elapsed().as_millis() as u64) < duration_ms {
        sent += c
            .bandcheck_send(&Packet::filler(Step::Publishing, entries))
            .await? as u64;
        entries += 2;
        let elapsed = sending.elapsed().as_millis() as u64;
        let pause =
            bandcheck::pause_ms(sent, elapsed, limit).min(duration_ms.saturating_sub(elapsed));
        if pause > 0 {
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
    c.bandcheck_send(&Packet::new(Step::StopPublish)).await?;
    expect(&mut c, Step::StopPublish).await?;
    c.bandcheck_send(&Packet::new(Step::StoppedPublish)).await?;

    let finished = expect(&mut c, Step::Finished).await?;
    c.bandcheck_send(&Packet::new(Step::Final)).await?;
    let (play_kbps, publish_kbps) = Report::kbps(&finished);
    Ok(Outcome {
        play_kbps,
        publish_kbps,
        report: Report::from_packet(&finished),
        limit_kbps,
        connect_ms,
        rtt_ms,
        play_bytes_seen,
        elapsed_ms: began.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_without_a_stream_get_one() {
        assert_eq!(
            client_url("rtmp://h:1935/app?key=K").unwrap(),
            "rtmp://h:1935/app?key=K/bandcheck"
        );
        assert_eq!(
            client_url("rtmp://h/app/s?key=K").unwrap(),
            "rtmp://h/app/s?key=K"
        );
        assert!(client_url("http://h/app").is_err());
        assert!(client_url("rtmp://h").is_err());
    }
}
