//! flowsketch: find the suspicious hosts in flow data with memory-efficient streaming sketches.
//!
//! Layers, each usable on its own: [`formats`] turns bytes into [`record::FlowRecord`]s, [`sketch`] counts distinct
//! values per key, [`rules`] says what to count and what is suspicious, [`engine`] runs rules over inputs on worker
//! threads, [`report`] writes findings, [`scanner::Scanner`] runs a whole scan (both passes) over files, in one
//! process or across a [`cluster`] of them on Timely Dataflow, and [`state`] saves a scan's counts and merges saved
//! ones. The command-line tool in `src/main.rs` is glue over these.

pub mod cluster;
pub mod compare;
pub mod engine;
pub mod formats;
pub mod fuzz;
pub mod gen;
pub mod hash;
pub mod input;
pub mod mem;
pub mod record;
pub mod report;
pub mod rules;
pub mod scanner;
pub mod sketch;
pub mod state;
