//! `flowsketch rules`: print the defaults, check a file.

use super::args::RulesArgs;
use super::ExitCode;
use flowsketch::rules::definitions::DEFAULT_TOML;
use flowsketch::rules::Definitions;

pub fn run(args: &RulesArgs) -> ExitCode {
    if let Some(path) = &args.check {
        return match Definitions::load(path) {
            Ok(d) => {
                println!(
                    "{}: valid, definitions {}, {} active rule{}{}",
                    path.display(),
                    d.version,
                    d.rules.len(),
                    if d.rules.len() == 1 { "" } else { "s" },
                    if d.inactive.is_empty() {
                        String::new()
                    } else {
                        format!(", {} inactive", d.inactive.len())
                    }
                );
                for (id, why) in &d.inactive {
                    println!("rule {id} {why}");
                }
                ExitCode::Clean
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!(
                    "{}: {} error{}",
                    path.display(),
                    e.0.len(),
                    if e.0.len() == 1 { "" } else { "s" }
                );
                ExitCode::Error
            }
        };
    }
    if args.print {
        print!("{DEFAULT_TOML}");
        return ExitCode::Clean;
    }
    // Without a flag: a table of the active defaults.
    let d = Definitions::builtin();
    println!("# definitions {} ({})", d.version, d.origin);
    for r in &d.rules {
        println!(
            "{:<4} {:<16} {:<9} key {:<10} count {:<15} above {:<6} where {}",
            r.id,
            r.name,
            r.severity,
            r.key.to_string(),
            r.count.to_string(),
            r.above,
            r.filter.text()
        );
    }
    for (id, why) in &d.inactive {
        println!("{id:<4} {why}");
    }
    ExitCode::Clean
}
