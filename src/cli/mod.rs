//! The command-line tool: flags in, library calls, exit code out.

pub mod args;
pub mod cluster;
pub mod compare;
pub mod demo;
pub mod gen;
mod progress;
pub mod rules_cmd;
pub mod scan;

/// Exit codes, as anti-virus scanners (clamscan) use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Nothing found.
    Clean = 0,
    /// At least one finding.
    Findings = 1,
    /// At least one error (some input could not be read, bad flags or definitions).
    Error = 2,
}
