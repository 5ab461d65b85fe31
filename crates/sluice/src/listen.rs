//! Listening sockets with a backlog sized for bursts: tokio's `bind` uses 128,
//! which drops connections (they retry a second later) when a few hundred
//! players arrive at once, as they do after an encoder restarts.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Pending connections the kernel queues for us (capped by net.core.somaxconn).
pub const LISTEN_BACKLOG: u32 = 4096;

pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn binds_and_accepts() {
        let l = super::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
    }
}
