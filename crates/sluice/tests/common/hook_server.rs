//! A minimal HTTP hook server for the tests that check what sluice posts (DVR, SRT): it
//! keeps every JSON body and answers each POST with the code the test's policy gives
//! (`0` allows; anything else denies, as SRS's hook servers answer). The hooks tests
//! (tests/hooks.rs, tests/graceful.rs) have servers of their own, with delays and paths.

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use super::read_request;

pub struct HookServer {
    pub port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl HookServer {
    /// Answers `0` to everything.
    pub fn start() -> HookServer {
        HookServer::with_policy(|_| "0")
    }

    /// Answers what `policy` says of each body (a body that is not JSON gets `0`).
    pub fn with_policy(policy: fn(&Value) -> &'static str) -> HookServer {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind hook server");
        let port = l.local_addr().expect("addr").port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let b = bodies.clone();
        thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let Some((_, body)) = read_request(&mut s) else {
                    continue;
                };
                let answer = if body.is_null() { "0" } else { policy(&body) };
                if !body.is_null() {
                    b.lock().unwrap_or_else(|e| e.into_inner()).push(body);
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        HookServer { port, bodies }
    }

    /// The bodies posted for `action` (`on_dvr`, `on_publish`...), in order.
    pub fn bodies(&self, action: &str) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|b| b["action"] == action)
            .cloned()
            .collect()
    }
}
