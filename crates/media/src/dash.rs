//! DASH (ISO/IEC 23009-1) live manifests over the fMP4 segments HLS writes: one muxed
//! representation with a `SegmentTemplate` (`$Number$`) and a `SegmentTimeline`, a period
//! per timeline (a republish starts a new one). Sans-IO: values in, XML text out.

use std::fmt::Write as _;

use crate::hls::format_date_time;

/// One segment as the timeline lists it: times in ms of media time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MpdSegment {
    pub number: u64,
    pub start_ms: u64,
    pub duration_ms: u64,
}

/// A period: its segments share one timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpdPeriod {
    pub id: u64,
    /// From `availabilityStartTime`, in ms.
    pub start_ms: u64,
    /// Media time (ms) that plays at the period's start.
    pub presentation_time_offset_ms: u64,
    pub segments: Vec<MpdSegment>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mpd {
    /// `dynamic` while live, `static` once the stream ended.
    pub live: bool,
    pub availability_start_ms: i64,
    pub publish_ms: i64,
    pub minimum_update_period_s: f64,
    pub time_shift_buffer_s: f64,
    pub max_segment_s: f64,
    /// RFC 6381 codecs of the muxed representation, e.g. `avc1.42c01f,mp4a.40.2`.
    pub codecs: String,
    pub video: Option<(u16, u16)>,
    pub bandwidth: u64,
    /// Relative to the MPD.
    pub initialization: String,
    /// Relative to the MPD, with `$Number$`.
    pub media: String,
    pub periods: Vec<MpdPeriod>,
}

fn secs(ms: u64) -> String {
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

/// Escapes the characters XML attribute values cannot hold as is.
fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Mpd {
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(1024);
        s.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
        s.push_str("<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\"");
        let ms = |v: f64| (v.max(0.0) * 1000.0).round() as u64;
        if self.live {
            let _ = write!(
                s,
                " type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" minimumUpdatePeriod=\"{}\" timeShiftBufferDepth=\"{}\" suggestedPresentationDelay=\"{}\"",
                format_date_time(self.availability_start_ms),
                format_date_time(self.publish_ms),
                secs(ms(self.minimum_update_period_s)),
                secs(ms(self.time_shift_buffer_s)),
                secs(ms(self.max_segment_s * 3.0)),
            );
        } else {
            let total: u64 = self
                .periods
                .last()
                .map(|p| p.start_ms + p.segments.iter().map(|x| x.duration_ms).sum::<u64>())
                .unwrap_or(0);
            let first = self.periods.first().map_or(0, |p| p.start_ms);
            let _ = write!(
                s,
                " type=\"static\" mediaPresentationDuration=\"{}\"",
                secs(total.saturating_sub(first))
            );
        }
        let _ = writeln!(
            s,
            " minBufferTime=\"{}\" maxSegmentDuration=\"{}\">",
            secs(ms(self.max_segment_s)),
            secs(ms(self.max_segment_s))
        );
        let first = self.periods.first().map_or(0, |p| p.start_ms);
        for p in &self.periods {
            // A static MPD starts at its first period.
            let start = if self.live {
                p.start_ms
            } else {
                p.start_ms - first
            };
            let _ = writeln!(s, "  <Period id=\"{}\" start=\"{}\">", p.id, secs(start));
            let mime = if self.video.is_some() {
                "video/mp4"
            } else {
                "audio/mp4"
            };
            let _ = writeln!(
                s,
                "    <AdaptationSet id=\"0\" mimeType=\"{mime}\" segmentAlignment=\"true\" startWithSAP=\"1\">"
            );
            let _ = write!(
                s,
                "      <Representation id=\"0\" codecs=\"{}\" bandwidth=\"{}\"",
                attr(&self.codecs),
                self.bandwidth.max(1)
            );
            if let Some((w, h)) = self.video {
                let _ = write!(s, " width=\"{w}\" height=\"{h}\"");
            }
            s.push_str(">\n");
            let start_number = p.segments.first().map_or(0, |x| x.number);
            let _ = writeln!(
                s,
                "        <SegmentTemplate timescale=\"1000\" presentationTimeOffset=\"{}\" initialization=\"{}\" media=\"{}\" startNumber=\"{start_number}\">",
                p.presentation_time_offset_ms,
                attr(&self.initialization),
                attr(&self.media)
            );
            s.push_str("          <SegmentTimeline>\n");
            let mut expect: Option<u64> = None;
            for seg in &p.segments {
                // `t` only where the timeline does not simply continue.
                if expect == Some(seg.start_ms) {
                    let _ = writeln!(s, "            <S d=\"{}\"/>", seg.duration_ms);
                } else {
                    let _ = writeln!(
                        s,
                        "            <S t=\"{}\" d=\"{}\"/>",
                        seg.start_ms, seg.duration_ms
                    );
                }
                expect = Some(seg.start_ms + seg.duration_ms);
            }
            s.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n");
            s.push_str("      </Representation>\n    </AdaptationSet>\n  </Period>\n");
        }
        if self.live {
            // The clock players align the live edge with (DASH-IF IOP 4.7: a live MPD carries
            // one). Without it dash.js asks time.akamai.com, a request leaving the operator's
            // network. `direct` carries the time itself: the moment the MPD was written, so a
            // player reading an older copy sets its clock a little behind, which only keeps
            // it further from the live edge, never ahead of the segments that exist.
            let _ = writeln!(
                s,
                "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"{}\"/>",
                format_date_time(self.publish_ms)
            );
        }
        s.push_str("</MPD>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_mpd_renders_exactly() {
        let mpd = Mpd {
            live: true,
            availability_start_ms: 1_700_000_000_000,
            publish_ms: 1_700_000_010_000,
            minimum_update_period_s: 2.0,
            time_shift_buffer_s: 30.0,
            max_segment_s: 2.0,
            codecs: "avc1.42c01f,mp4a.40.2".into(),
            video: Some((640, 360)),
            bandwidth: 500_000,
            initialization: "test/init.mp4".into(),
            media: "test-$Number$.m4s".into(),
            periods: vec![MpdPeriod {
                id: 0,
                start_ms: 0,
                presentation_time_offset_ms: 40,
                segments: vec![
                    MpdSegment {
                        number: 3,
                        start_ms: 40,
                        duration_ms: 2000,
                    },
                    MpdSegment {
                        number: 4,
                        start_ms: 2040,
                        duration_ms: 1960,
                    },
                    MpdSegment {
                        number: 5,
                        start_ms: 4100,
                        duration_ms: 2000,
                    },
                ],
            }],
        };
        let want = r#"<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="dynamic" availabilityStartTime="2023-11-14T22:13:20.000Z" publishTime="2023-11-14T22:13:30.000Z" minimumUpdatePeriod="PT2.000S" timeShiftBufferDepth="PT30.000S" suggestedPresentationDelay="PT6.000S" minBufferTime="PT2.000S" maxSegmentDuration="PT2.000S">
  <Period id="0" start="PT0.000S">
    <AdaptationSet id="0" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="0" codecs="avc1.42c01f,mp4a.40.2" bandwidth="500000" width="640" height="360">
        <SegmentTemplate timescale="1000" presentationTimeOffset="40" initialization="test/init.mp4" media="test-$Number$.m4s" startNumber="3">
          <SegmentTimeline>
            <S t="40" d="2000"/>
            <S d="1960"/>
            <S t="4100" d="2000"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="2023-11-14T22:13:30.000Z"/>
</MPD>
"#;
        assert_eq!(mpd.render(), want);
        let ended = Mpd { live: false, ..mpd };
        let text = ended.render();
        assert!(
            text.contains("type=\"static\" mediaPresentationDuration=\"PT5.960S\""),
            "{text}"
        );
        assert!(!text.contains("UTCTiming"), "{text}");
    }
}
