//! Directives SRS knows but sluice does not implement yet, per scope. They are accepted with a
//! warning so an SRS config keeps working; anything not listed here (nor implemented) is an
//! error so typos surface. Lists follow SRS's `check_normal_config` (v6/v7) plus the older
//! names SRS still rewrites on load.

/// Top level.
pub const ROOT: &[&str] = &[
    "srs_log_level_v2",
    "tencentcloud_apm",
    "tencentcloud_cls",
    "stats",
    "pithy_print",
    "stream_caster",
    "rtsp_server",
    "exporter",
    "utc_time",
    "work_dir",
    "asprocess",
    "server_id",
    "grace_final_wait",
    "force_grace_quit",
    "grace_start_wait",
    "empty_ip_ok",
    "disable_daemon_for_docker",
    "inotify_auto_reload",
    "auto_reload_for_docker",
    "tcmalloc_release_rate",
    "query_latest_version",
    "first_wait_for_qlv",
    "circuit_breaker",
    "is_full",
    "in_docker",
    // SRS 5+: the interval of its thread-stats line (`threads { interval 10; }`).
    "threads",
];

/// Inside `vhost NAME { }`.
pub const VHOST: &[&str] = &[
    "http_static",
    "hds",
    "exec",
    "in_ack_size",
    "out_ack_size",
    "rtsp",
    // Pre-SRS-3 vhost-level names that SRS moves into play/publish/cluster/refer on load
    // (`mode`, `origin`, `token_traverse` and `debug_srs_upnode` are converted into
    // `cluster { }` by build/mod.rs, as SRS does).
    "vhost",
    "http",
    "mr",
    "mr_latency",
    "mix_correct",
    "send_min_interval",
    "reduce_sequence_header",
];

/// Inside `vhost { play { } }`.
pub const PLAY: &[&str] = &[
    "mix_correct",
    "gop_cache_max_frames",
    "send_min_interval",
    "reduce_sequence_header",
    "mw_msgs",
];

/// Inside `vhost { publish { } }`.
pub const PUBLISH: &[&str] = &[
    "mr",
    "mr_latency",
    "parse_sps",
    "try_annexb_first",
    "kickoff_for_idle",
];

/// Inside `http_api { }` and `http_server { }`.
pub const HTTP_API: &[&str] = &[];
pub const HTTP_SERVER: &[&str] = &[];

/// Inside `vhost { http_remux { } }`.
pub const HTTP_REMUX: &[&str] = &["fast_cache", "drop_if_not_match"];

/// Inside `vhost { dash { } }`: SRS 6's window, cleanup and dispose (sluice's DASH lists HLS's
/// segments, so HLS's window, cleanup and dispose apply).
pub const DASH: &[&str] = &["dash_window_size", "dash_cleanup", "dash_dispose"];

/// Inside `vhost { hls { } }`: HLS sessions, fMP4 and the SRS 2 RAM mode.
pub const HLS: &[&str] = &[
    "hls_storage",
    "hls_mount",
    "hls_ctx",
    "hls_ts_ctx",
    "hls_recover",
    "hls_master_m3u8_path_relative",
];
