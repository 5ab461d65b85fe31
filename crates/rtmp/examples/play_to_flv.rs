//! Plays an RTMP stream into an FLV file.
//!
//! cargo run -p rtmp --example play_to_flv -- rtmp://127.0.0.1/live/test out.flv [--duration SECS]

use std::error::Error;
use std::io::SeekFrom;
use std::time::Duration;

use media::flv::{tag_type, write_tag, FlvHeader};
use rtmp::client::{Client, MediaKind};
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio::time::Instant;

/// Offset of the flags byte in the FLV header, rewritten once we know what the stream held.
const FLAGS_OFFSET: u64 = 4;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut duration = None;
    if let Some(i) = args.iter().position(|a| a == "--duration") {
        let secs: f64 = args.get(i + 1).ok_or("--duration needs a value")?.parse()?;
        if !(secs.is_finite() && secs > 0.0) {
            return Err("--duration must be a positive number of seconds".into());
        }
        duration = Some(Duration::from_secs_f64(secs));
        args.drain(i..i + 2);
    }
    let [url, out] = args.as_slice() else {
        eprintln!("usage: play_to_flv rtmp://host[:port]/app/stream out.flv [--duration SECS]");
        std::process::exit(2);
    };

    let mut player = Client::connect(url).await?.play().await?;
    println!("playing {url}");
    let deadline = duration.map(|d| Instant::now() + d);

    let mut file = BufWriter::new(tokio::fs::File::create(out).await?);
    let mut header = FlvHeader {
        has_audio: true,
        has_video: true,
    };
    file.write_all(&header.encode()).await?;
    header = FlvHeader {
        has_audio: false,
        has_video: false,
    };

    let mut first_ts = None;
    let mut tags = 0u64;
    let mut buf = Vec::new();
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, player.recv()).await {
                Ok(r) => r?,
                Err(_) => break,
            },
            None => player.recv().await?,
        };
        let Some(msg) = next else {
            println!("end of stream");
            break;
        };
        let tt = match msg.kind {
            MediaKind::Audio => {
                header.has_audio = true;
                tag_type::AUDIO
            }
            MediaKind::Video => {
                header.has_video = true;
                tag_type::VIDEO
            }
            MediaKind::Metadata => tag_type::SCRIPT,
        };
        // Files start at 0 whatever the server's clock says.
        let first = *first_ts.get_or_insert(msg.timestamp);
        let ts = msg.timestamp.saturating_sub(first);
        buf.clear();
        write_tag(&mut buf, tt, ts, &msg.payload);
        file.write_all(&buf).await?;
        tags += 1;
    }
    file.flush().await?;
    let mut file = file.into_inner();
    file.seek(SeekFrom::Start(FLAGS_OFFSET)).await?;
    file.write_all(&header.encode()[FLAGS_OFFSET as usize..FLAGS_OFFSET as usize + 1])
        .await?;
    file.flush().await?;
    println!(
        "wrote {tags} tags to {out} (audio: {}, video: {})",
        header.has_audio, header.has_video
    );
    Ok(())
}
