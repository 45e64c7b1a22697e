//! `flowsketch gen`: stream synthetic traffic into rotated nfcapd files, and write the planted truth beside them.

use super::args::GenArgs;
use super::ExitCode;
use flowsketch::formats::nfcapd::writer::{Compression, NfcapdWriter};
use flowsketch::gen::traffic::{Traffic, TrafficConfig};
use flowsketch::report::time::iso8601_ms;
use flowsketch::rules::rule::parse_window;
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;
use std::time::Instant;

pub fn run(args: &GenArgs) -> ExitCode {
    match generate(args) {
        Ok(()) => ExitCode::Clean,
        Err(e) => {
            eprintln!("flowsketch gen: {e}");
            ExitCode::Error
        }
    }
}

fn generate(args: &GenArgs) -> Result<(), String> {
    let span_ms = parse_window(&args.span).map_err(|e| format!("--span: {e}"))?;
    let rotate_ms = match args.rotate.as_str() {
        "0" => u64::MAX,
        r => parse_window(r).map_err(|e| format!("--rotate: {e}"))?,
    };
    if !(0.0..=1.0).contains(&args.v6) {
        return Err(format!("--v6 must be between 0 and 1; found {}", args.v6));
    }
    if args.sources == 0 {
        return Err("--sources must be at least 1".into());
    }
    let compression = match args.compression.as_str() {
        "none" => Compression::None,
        _ => Compression::Lz4,
    };
    std::fs::create_dir_all(&args.output)
        .map_err(|e| format!("cannot create {}: {e}", args.output.display()))?;
    let cfg = TrafficConfig {
        seed: args.seed,
        flows: args.flows,
        sources: args.sources,
        v6_share: args.v6,
        span_ms,
        plant: !args.no_plant,
        spoofed: args.spoofed,
        ..TrafficConfig::default()
    };
    let start = Instant::now();
    let (traffic, events) = Traffic::new(cfg.clone());
    let total = traffic.total();
    let mut files = Vec::new();
    let mut current: Option<(u64, NfcapdWriter<BufWriter<File>>)> = None;
    let io_err = |e: io::Error| format!("cannot write into {}: {e}", args.output.display());
    for f in traffic {
        let slot = (f.first_ms - cfg.start_ms) / rotate_ms;
        if current.as_ref().map(|c| c.0) != Some(slot) {
            if let Some((_, w)) = current.take() {
                w.finish().map_err(io_err)?;
            }
            let name = file_name(cfg.start_ms + slot.saturating_mul(rotate_ms).min(span_ms));
            let file = File::create(args.output.join(&name)).map_err(io_err)?;
            let w = NfcapdWriter::new(
                BufWriter::with_capacity(1 << 20, file),
                compression,
                "flowsketch-gen",
            )
            .map_err(io_err)?;
            files.push(name);
            current = Some((slot, w));
        }
        if let Some((_, w)) = current.as_mut() {
            w.write(&f).map_err(io_err)?;
        }
    }
    if let Some((_, w)) = current.take() {
        w.finish().map_err(io_err)?;
    }
    write_truth(
        &args.output.join("truth.json"),
        args,
        &cfg,
        total,
        &files,
        &events,
    )?;
    eprintln!(
        "flowsketch gen: {total} flows ({} planted events) in {} file{} under {} in {:.1} s",
        events.len(),
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        args.output.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `nfcapd.YYYYMMDDhhmm`, the name nfcapd gives the file that starts at `ms`.
fn file_name(ms: u64) -> String {
    let iso = iso8601_ms(ms);
    let digits: String = iso.chars().filter(char::is_ascii_digit).take(12).collect();
    format!("nfcapd.{digits}")
}

fn write_truth(
    path: &Path,
    args: &GenArgs,
    cfg: &TrafficConfig,
    total: u64,
    files: &[String],
    events: &[flowsketch::gen::plant::Event],
) -> Result<(), String> {
    let truth = serde_json::json!({
        "generator": format!("flowsketch {}", env!("CARGO_PKG_VERSION")),
        "seed": cfg.seed,
        "flows": total,
        "background_flows": cfg.flows,
        "sources": cfg.sources,
        "v6_share": cfg.v6_share,
        "start": iso8601_ms(cfg.start_ms),
        "span": args.span,
        "files": files,
        "events": events,
    });
    let text = serde_json::to_string_pretty(&truth).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}
