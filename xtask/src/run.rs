//! Running commands with clear errors: the command line is always part of the message.

use std::{
    path::PathBuf,
    process::{Command, Output},
};

use anyhow::{Context as _, bail};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` with inherited stdio; fails when it exits non-zero.
pub fn status(cmd: &mut Command) -> anyhow::Result<()> {
    let what = describe(cmd);
    let st = cmd
        .status()
        .with_context(|| format!("cannot start `{what}`"))?;
    if !st.success() {
        bail!("`{what}` failed ({st})");
    }
    Ok(())
}

/// Runs `cmd` and captures its output; fails when it exits non-zero.
pub fn output(cmd: &mut Command) -> anyhow::Result<Output> {
    let what = describe(cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot start `{what}`"))?;
    if !out.status.success() {
        bail!(
            "`{what}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// `cargo` from the toolchain running xtask, in the workspace root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}
