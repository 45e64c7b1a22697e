//! One finding per burst: a burst over a rule's threshold in hopping windows is over it in every window that
//! holds enough of it, and those windows overlap. Findings of one key whose windows overlap or touch are merged
//! into the finding of the window with the highest count, which keeps that window's count, flows and evidence,
//! takes the first and last flow times of all of them (the burst's), and says how many windows it stands for.

use super::Finding;

/// Merge the findings of hopping windows (those with [`Finding::hops`]) that belong to one burst; others are
/// left as they are. The result does not depend on the order of `findings`.
pub fn merge_bursts(findings: &mut Vec<Finding>) {
    if findings.iter().all(|f| f.hops.is_none()) {
        return;
    }
    let (mut hopping, rest): (Vec<Finding>, Vec<Finding>) =
        findings.drain(..).partition(|f| f.hops.is_some());
    // By rule and key, then window, so each burst is a run of neighbours.
    hopping.sort_by(|a, b| {
        (&a.rule, a.key.addr, a.key.extra, a.key.window).cmp(&(
            &b.rule,
            b.key.addr,
            b.key.extra,
            b.key.window,
        ))
    });
    findings.extend(rest);
    let mut burst: Vec<Finding> = Vec::new();
    for f in hopping {
        let joins = burst.last().is_some_and(|last| {
            // Window k covers [k step, k step + window): the next window overlaps or touches it when it starts
            // at most window / step steps later.
            let per_window = f.window_ms.unwrap_or(0) / f.hops.map_or(1, |h| h.step_ms.max(1));
            last.rule == f.rule
                && last.key.addr == f.key.addr
                && last.key.extra == f.key.extra
                && f.key.window - last.key.window <= per_window
        });
        if !joins {
            findings.extend(merge(&mut burst));
        }
        burst.push(f);
    }
    findings.extend(merge(&mut burst));
}

/// The findings of one burst as one: the best window's (highest count, then most flows, then earliest), with the
/// burst's first and last times.
fn merge(burst: &mut Vec<Finding>) -> Option<Finding> {
    let first = burst.iter().map(|f| f.first_ms).min()?;
    let last = burst.iter().map(|f| f.last_ms).max()?;
    let windows = burst.len() as u64;
    let best =
        burst
            .drain(..)
            .reduce(|a, b| match (b.count, b.flows).cmp(&(a.count, a.flows)) {
                std::cmp::Ordering::Greater => b,
                _ => a,
            })?;
    Some(Finding {
        first_ms: first,
        last_ms: last,
        hops: best.hops.map(|h| super::Hops { windows, ..h }),
        ..best
    })
}
