//! Definitions: rules, lists and filters that say what makes a host worth investigating.

pub mod definitions;
pub mod filter;
pub mod lists;
pub mod rule;
pub mod source_error;

pub use definitions::Definitions;
pub use rule::{
    AddrField, CountSpec, Distinct, DistinctField, KeyExtra, KeySpec, Prefix, Rule, Severity,
    Window,
};
pub use source_error::{SourceError, SourceErrors};
