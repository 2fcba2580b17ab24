//! `include/charmlp.h` is what cbindgen makes of `src/lib.rs` with `cbindgen.toml`: a change to
//! the C API that leaves the header stale fails here. `CHARMLP_BLESS=1` rewrites it instead.

#[test]
fn the_header_is_cbindgens() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config =
        cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen reads src/lib.rs")
        .write(&mut generated);
    let path = format!("{dir}/include/charmlp.h");
    if std::env::var_os("CHARMLP_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/charmlp.h");
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/charmlp.h is not cbindgen's output for src/lib.rs: rewrite it with \
         CHARMLP_BLESS=1 cargo test -p charmlp-ffi --test header"
    );
}
