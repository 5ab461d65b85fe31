//! Compiles `csrc/shim.c` against the system's libavcodec and libavutil, found with
//! pkg-config (Debian: libavcodec-dev). Nothing is downloaded. The shim keeps every
//! libavcodec struct access in C, where the compiler checks it against the headers of
//! the library that is linked, instead of Rust declarations of struct layouts that
//! would silently break on another FFmpeg version.

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.c");
    let mut include = Vec::new();
    for (lib, version) in [("libavcodec", "58.0.0"), ("libavutil", "56.0.0")] {
        match pkg_config::Config::new()
            .atleast_version(version)
            .probe(lib)
        {
            Ok(l) => include.extend(l.include_paths),
            Err(e) => panic!(
                "{lib} not found by pkg-config ({e}); install it: apt-get install libavcodec-dev"
            ),
        }
    }
    let mut build = cc::Build::new();
    build
        .file("csrc/shim.c")
        .warnings(true)
        .extra_warnings(true);
    for p in include {
        build.include(p);
    }
    build.compile("sluice_avaac");
}
