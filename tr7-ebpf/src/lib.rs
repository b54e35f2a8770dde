//! The eBPF programs live in the `tr7-dataplane` binary target (src/main.rs). This library
//! target is empty: it exists so tr7-agent can name this crate as a build dependency, which
//! makes cargo rebuild the agent when the programs change.
#![no_std]
