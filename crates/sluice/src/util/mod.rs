//! Three small things many modules need, kept in one place so they are done one way:
//! poison-tolerant locking ([`sync`]), Unix-epoch time ([`time`]) and short base-36 ids
//! ([`ids`]).

pub mod ids;
pub mod sync;
pub mod time;

pub use sync::{lock, read, write};
pub use time::{unix_ms, unix_ms_of, unix_secs};
