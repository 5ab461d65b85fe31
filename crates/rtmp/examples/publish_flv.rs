//! Publishes an FLV file to an RTMP server in real time, like `ffmpeg -re -i FILE -c copy -f flv URL`.
//!
//! cargo run -p rtmp --example publish_flv -- FILE.flv rtmp://127.0.0.1/live/test [--loop]

use std::error::Error;
use std::time::Duration;

use bytes::Bytes;
use media::flv::{read_flv, tag_type};
use rtmp::client::{Client, MediaKind};
use tokio::time::Instant;

/// Gap put between the last tag of one pass and the first of the next when looping, so
/// timestamps keep increasing.
const LOOP_GAP_MS: u32 = 40;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let looping = if let Some(i) = args.iter().position(|a| a == "--loop") {
        args.remove(i);
        true
    } else {
        false
    };
    let [file, url] = args.as_slice() else {
        eprintln!("usage: publish_flv FILE.flv rtmp://host[:port]/app/stream [--loop]");
        std::process::exit(2);
    };

    let data = Bytes::from(tokio::fs::read(file).await?);
    let (_, tags) = read_flv(data)?;
    let first_ts = tags.first().map_or(0, |t| t.timestamp);
    let last_ts = tags.last().map_or(0, |t| t.timestamp);
    let pass_ms = last_ts.saturating_sub(first_ts).saturating_add(LOOP_GAP_MS);

    let client = Client::connect(url).await?;
    println!("connected to {}", client.url().tc_url);
    let mut publisher = client.publish().await?;
    println!("publishing {} tags from {file}", tags.len());

    let start = Instant::now();
    let mut offset: u32 = 0;
    loop {
        for tag in &tags {
            let kind = match tag.tag_type {
                tag_type::AUDIO => MediaKind::Audio,
                tag_type::VIDEO => MediaKind::Video,
                tag_type::SCRIPT => MediaKind::Metadata,
                _ => continue,
            };
            let ts = tag
                .timestamp
                .saturating_sub(first_ts)
                .saturating_add(offset);
            let due = start + Duration::from_millis(u64::from(ts));
            if due > Instant::now() {
                // Everything due so far goes out in one write before we wait.
                publisher.flush().await?;
                tokio::time::sleep_until(due).await;
            }
            publisher.send(kind, ts, tag.data.clone()).await?;
        }
        if !looping {
            break;
        }
        offset = offset.saturating_add(pass_ms);
    }
    publisher.close().await?;
    println!("done");
    Ok(())
}
