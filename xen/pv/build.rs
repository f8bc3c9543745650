//! Publishes the guest linker script: a guest passes `-C link-arg=-Txen-pv.ld` (see
//! guests/.cargo/config.toml) and the linker finds it through this search path.
fn main() {
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "none" {
        std::fs::copy("xen-pv.ld", format!("{out}/xen-pv.ld")).expect("copy xen-pv.ld");
        println!("cargo:rustc-link-search=native={out}");
    }
    println!("cargo:rerun-if-changed=xen-pv.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
