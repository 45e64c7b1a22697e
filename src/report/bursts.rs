//! One finding per burst: a burst over a rule's threshold in hopping windows is over it in every window that
//! holds enough of it, and those windows overlap. Findings of one key whose windows overlap or touch are merged
//! into the finding of the window with the highest count, which keeps that window's count, flows and evidence,
//! takes the first and last flow times of all of them (the burst's), and says how many windows it stands for.

use super::Finding;

/// Merge the findings of hopping windows (those with [`Finding::hops`]) that belong to one burst; others are
/// left as they are. The result does not depend on the order of `findings`, and merging again changes nothing
/// (bursts stay apart, and a merged finding's windows add up).
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
    let windows = burst.iter().map(|f| f.hops.map_or(1, |h| h.windows)).sum();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{KeyParts, KeyValue};
    use crate::record::Addr;
    use crate::report::Hops;

    /// A finding of a one-minute window every 10 s, for window `k` of host `host`, with its count.
    fn found(host: u32, k: u64, count: u64) -> Finding {
        let defs = crate::rules::Definitions::parse(
            "[[rule]]\nid = \"B\"\nkey = \"src\"\ncount = \"flows\"\nabove = 1\nwindow = \"1m\"\nstep = \"10s\"\n",
            "t",
            None,
        )
        .unwrap();
        let mut seen = crate::engine::Seen::default();
        seen.cover(k * 10_000 + 1, k * 10_000 + 59_000, count);
        Finding::new(
            &defs.rules[0],
            KeyParts {
                addr: Addr::v4(host),
                extra: KeyValue::None,
                window: k,
            },
            crate::sketch::Estimate::exact(count),
            seen,
            0,
            true,
        )
    }

    #[test]
    fn overlapping_or_touching_windows_of_a_key_are_one_burst() {
        // Windows 3, 4, 5 overlap; 11 touches 5 (5 ends at 110 s, where 11 starts); 18 is apart; another host's
        // window 4 is its own.
        let input = vec![
            found(1, 11, 150),
            found(1, 3, 120),
            found(2, 4, 500),
            found(1, 18, 101),
            found(1, 5, 150),
            found(1, 4, 170),
        ];
        let mut a = input.clone();
        merge_bursts(&mut a);
        let mut b: Vec<Finding> = input.into_iter().rev().collect();
        merge_bursts(&mut b);
        crate::report::sort(&mut a);
        crate::report::sort(&mut b);
        assert_eq!(a, b, "the same whatever the order");
        let mut again = a.clone();
        merge_bursts(&mut again);
        crate::report::sort(&mut again);
        assert_eq!(again, a, "merging merged findings changes nothing");
        let got: Vec<(u32, u64, u64, u64, u64, u64)> = a
            .iter()
            .map(|f| {
                let h = f.hops.unwrap();
                let host = f.key.addr.as_v4().unwrap();
                (
                    host,
                    f.key.window,
                    f.count,
                    h.windows,
                    f.first_ms,
                    f.last_ms,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (2, 4, 500, 1, 40_001, 99_000),
                (1, 4, 170, 4, 30_001, 169_000),
                (1, 18, 101, 1, 180_001, 239_000),
            ]
        );
        // The best window's bounds; the burst's times.
        assert_eq!(a[1].window_bounds(), Some((40_000, 100_000)));
        assert_eq!(
            a[1].hops,
            Some(Hops {
                step_ms: 10_000,
                windows: 4
            })
        );
    }

    #[test]
    fn ties_go_to_the_earliest_window_and_tumbling_findings_are_left_alone() {
        let mut v = vec![found(1, 7, 200), found(1, 6, 200)];
        merge_bursts(&mut v);
        assert_eq!((v.len(), v[0].key.window), (1, 6));
        let mut tumbling = found(1, 6, 200);
        tumbling.hops = None;
        let mut w = vec![tumbling.clone(), tumbling.clone()];
        merge_bursts(&mut w);
        assert_eq!(w, [tumbling.clone(), tumbling]);
    }
}
