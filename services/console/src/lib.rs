//! console: the app registry and public API; the only writer of desired
//! state. [`db`] is its storage (see docs/reference/console.md); [`desired`]
//! turns a release's lain.yaml into desired procs and [`deploy`] writes them
//! to etcd.

pub mod db;
pub mod deploy;
pub mod desired;
