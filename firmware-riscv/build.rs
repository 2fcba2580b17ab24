//! Puts memory-virt.x, as memory.x, where riscv-rt's link.x finds it (no file here is called
//! memory.x: the linker, run in this directory, would find it first).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory-virt.x")).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-virt.x");
}
