//! deployd: places instances on Docker nodes and keeps them healthy.
//!
//! The library holds deployd's logic so that it can be tested and
//! benchmarked without a running daemon; `main.rs` only starts the service.
//! So far: the [`scheduler`], a pure function from nodes and placement
//! requests to placements and failures.

pub mod scheduler;
