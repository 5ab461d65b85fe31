//! Links the system's libsrt, found with pkg-config (Debian: libsrt-openssl-dev or
//! libsrt-gnutls-dev). Nothing is built or downloaded here.

fn main() {
    if let Err(e) = pkg_config::Config::new()
        .atleast_version("1.4.2")
        .probe("srt")
    {
        panic!(
            "libsrt not found by pkg-config ({e}); install it: apt-get install libsrt-openssl-dev"
        );
    }
}
