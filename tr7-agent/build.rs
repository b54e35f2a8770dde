//! Builds the eBPF programs (tr7-ebpf) for the BPF target with aya-build and leaves the
//! object in OUT_DIR, where `dataplane::object` embeds it. `AYA_BUILD_SKIP=1` skips this for
//! clippy and docs; the binary then carries an empty object and says so when asked to load it.

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir
        .parent()
        .ok_or_else(|| anyhow!("tr7-agent has no parent directory"))?
        .join("tr7-ebpf");
    let ebpf_dir = ebpf_dir.to_str().context("tr7-ebpf path is not UTF-8")?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    for object in [
        "tr7-dataplane",
        "tr7-baseline",
        "tr7-announce",
        "tr7-carrier",
    ] {
        let out = out_dir.join(object);
        if skip && !out.exists() {
            // Empty objects: `include_bytes!` needs a file; loading one fails with a clear error.
            fs::write(&out, [])?;
        }
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tr7-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
