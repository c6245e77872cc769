//! console: the app registry and public API; the only writer of desired
//! state. [`db`] is its storage (see docs/reference/console.md).

pub mod db;
