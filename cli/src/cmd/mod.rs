pub mod completions;
pub mod validate;
