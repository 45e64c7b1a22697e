//! Definitions: rules, lists and filters that say what makes a host worth investigating.

pub mod filter;
pub mod lists;
