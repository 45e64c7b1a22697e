//! `flowsketch demo`: the built-in default job. Writes ten minutes of a small site's flows with planted scanners
//! as two rotated nfcapd files, scans them with the default definitions, prints the findings, and checks each
//! planted host was found by the rules it should trigger (and the decoy by none).

use super::args::DemoArgs;
use super::scan::ScanPlan;
use super::ExitCode;
use flowsketch::formats::nfcapd::writer::{Compression, NfcapdWriter};
use flowsketch::gen::demo::{self, Planted};
use flowsketch::record::FlowRecord;
use flowsketch::report::{self, Finding, Format};
use flowsketch::rules::Definitions;
use flowsketch::scanner::ScanConfig;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

pub fn run(args: &DemoArgs) -> ExitCode {
    let temp;
    let dir: PathBuf = match &args.keep {
        Some(d) => {
            if let Err(e) = std::fs::create_dir_all(d) {
                eprintln!("flowsketch: cannot create {}: {e}", d.display());
                return ExitCode::Error;
            }
            d.clone()
        }
        None => match tempfile::Builder::new().prefix("flowsketch-demo").tempdir() {
            Ok(t) => {
                temp = t;
                temp.path().to_path_buf()
            }
            Err(e) => {
                eprintln!("flowsketch: cannot make a temporary folder: {e}");
                return ExitCode::Error;
            }
        },
    };
    let (flows, planted) = demo::capture(args.seed, args.flows);
    let files = match write_rotated(&dir, &flows) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "flowsketch: cannot write the demo capture in {}: {e}",
                dir.display()
            );
            return ExitCode::Error;
        }
    };
    let kept = args.keep.is_some();
    eprintln!(
        "flowsketch demo: wrote {} flows with {} planted hosts to {} ({}; {})",
        flows.len(),
        planted.len(),
        dir.display(),
        files.join(", "),
        if kept {
            "kept after the demo"
        } else {
            "a temporary folder, deleted after the demo: --keep DIR keeps the capture"
        }
    );
    let mut config = ScanConfig::default();
    if let Some(n) = args.threads {
        config.threads = super::args::capped_threads(n).0;
    }
    let plan = ScanPlan {
        definitions: Definitions::builtin(),
        config,
        format: Format::Text,
        quiet: false,
        stats: false,
        save_state: None,
        export_sketches: None,
    };
    eprintln!("flowsketch demo: flowsketch scan {}", dir.display());
    let scan = plan.scan(std::slice::from_ref(&dir));
    for e in &scan.errors {
        eprintln!("flowsketch: {e}");
    }
    let meta = plan.meta();
    let stdout = io::stdout();
    let _ = report::write(&mut stdout.lock(), Format::Text, &meta, &scan.findings);
    let ok = verdict(&planted, &scan.findings) && scan.errors.is_empty();
    eprintln!(
        "flowsketch demo: {} flows scanned in {:.2} s ({})",
        scan.stats.flows,
        scan.secs(),
        scan.guarantee.describe()
    );
    if kept {
        eprintln!(
            "flowsketch demo: the capture stays in {}: try flowsketch scan {0} (or nfdump -R {0})",
            dir.display()
        );
    } else {
        eprintln!("flowsketch demo: deleted {}", dir.display());
    }
    if ok {
        eprintln!("flowsketch demo: every planted host was found, and nothing under a threshold was reported");
        ExitCode::Clean
    } else {
        eprintln!("flowsketch demo: the scan did not find what was planted (see above)");
        ExitCode::Error
    }
}

/// Two five-minute files named as nfcapd rotates them (`nfcapd.YYYYMMDDhhmm`).
fn write_rotated(dir: &Path, flows: &[FlowRecord]) -> io::Result<Vec<String>> {
    let half = demo::START_MS + 300_000;
    let mut names = Vec::new();
    for (name, range) in [
        ("nfcapd.202611260300", demo::START_MS..half),
        ("nfcapd.202611260305", half..u64::MAX),
    ] {
        let file = std::fs::File::create(dir.join(name))?;
        let mut w = NfcapdWriter::new(BufWriter::new(file), Compression::Lz4, "flowsketch-demo")?;
        for f in flows.iter().filter(|f| range.contains(&f.first_ms)) {
            w.write(f)?;
        }
        w.finish()?;
        names.push(name.to_string());
    }
    Ok(names)
}

/// Print, for each planted host, which rules found it; true when each found exactly what it should.
fn verdict(planted: &[Planted], findings: &[Finding]) -> bool {
    let mut ok = true;
    eprintln!("flowsketch demo: planted hosts");
    for p in planted {
        let mut found: Vec<&str> = findings
            .iter()
            .filter(|f| f.key.addr == p.host)
            .map(|f| f.rule.as_str())
            .collect();
        found.sort_unstable();
        found.dedup();
        let good = found == p.expect;
        ok &= good;
        eprintln!(
            "  {} {:<15} {:<50} expected [{}] found [{}]",
            if good { "ok  " } else { "MISS" },
            p.host.to_string(),
            p.what,
            p.expect.join(" "),
            found.join(" ")
        );
    }
    let planted_hosts: Vec<_> = planted.iter().map(|p| p.host).collect();
    let stray: Vec<&Finding> = findings
        .iter()
        .filter(|f| !planted_hosts.contains(&f.key.addr))
        .collect();
    if !stray.is_empty() {
        ok = false;
        for f in stray {
            eprintln!("  STRAY {} {} on background traffic", f.rule, f.key_text());
        }
    }
    ok
}
