pub mod completions;
pub mod local;
pub mod validate;
