//! `flowsketch rules`: print the defaults, check a file.

use super::args::RulesArgs;
use super::ExitCode;
use flowsketch::rules::definitions::DEFAULT_TOML;
use flowsketch::rules::rule::format_window;
use flowsketch::rules::{Definitions, Rule};

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
                print_table(&d);
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
    print_table(&d);
    for (id, why) in &d.inactive {
        println!("{id:<4} {why}");
    }
    ExitCode::Clean
}

/// One line per active rule: what it counts per key, its threshold, and the forms it uses (window and step,
/// flows_above, above_for) only where it has them, then its filter.
fn print_table(d: &Definitions) {
    for r in &d.rules {
        println!("{}", table_line(r));
    }
}

fn table_line(r: &Rule) -> String {
    let mut extra = Vec::new();
    if let Some(w) = r.window {
        extra.push(format!("window {}", format_window(w.len_ms)));
        if w.step_ms != w.len_ms {
            extra.push(format!("step {}", format_window(w.step_ms)));
        }
    }
    if r.flows_above > 0 {
        extra.push(format!("flows_above {}", r.flows_above));
    }
    if !r.above_for.is_empty() {
        let groups: Vec<String> = (r.above_for.iter())
            .map(|g| format!("@{}={}", g.list, g.above))
            .collect();
        extra.push(format!("above_for {}", groups.join(",")));
    }
    let mut line = format!(
        "{:<4} {:<16} {:<9} key {:<10} count {:<15} above {:<6}",
        r.id,
        r.name,
        r.severity.to_string(),
        r.key.to_string(),
        r.count.to_string(),
        r.above,
    );
    for e in extra {
        line += " ";
        line += &e;
    }
    line + " where " + r.filter.text()
}
