//! Command-line front ends of the library, one file per command group. Output meant for the
//! user goes to stdout; logs go to stderr through tracing.

pub mod dataplane;
pub mod status;
