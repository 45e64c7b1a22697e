//! What every Timely worker of a cluster scan does: the engine's two passes, with Timely's exchange between the
//! worker that decodes a record and the worker that owns its key.
//!
//! One dataflow with four inputs, each a phase of the scan, each followed by an operator and a probe:
//! 1. **Count.** A worker decodes its share of the chunks and routes each batch as one process does
//!    ([`Router`]); refs for its own shard are applied at once, the others go with a copy of the records they name
//!    (a [`Packet`]) through the exchange to their owner, whose operator applies them to its shard.
//! 2. **Candidates.** Each owner takes its candidates out of its shard (as one process does) and sends their hashes
//!    to every worker, so every worker builds the same prefilter of all candidates.
//! 3. **Verify.** Every worker decodes its chunks again and sends only the refs the prefilter passes to their
//!    owners, which tally their own candidates exactly.
//! 4. **Gather.** Each worker sends its findings and totals to worker 0 (of process 0), which makes the report.
//!
//! Flow control: a worker's first and third inputs advance one step per chunk, and a worker waits while the
//! probe says a peer is more than [`SLACK`] chunks behind in applying what it was sent, so what is in flight
//! stays bounded whatever the speed of each worker.

use super::wire::Packet;
use super::{Ctx, Opened, Report, Totals};
use crate::engine::verify::{Candidates, Prefilter, Tally};
use crate::engine::{
    shard::Ref, CompiledRule, ErrorLog, Job, Meta, Router, ScanResult, ScanStats, Shard,
};
use crate::formats::ChunkStats;
use crate::record::FlowRecord;
use crate::scanner;
use crate::sketch::DistinctCounter;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::vec::Input;
use timely::dataflow::operators::{Operator, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};
use timely::worker::Worker;

/// Chunks a worker may run ahead of the slowest owner's applying.
const SLACK: u64 = 4;
/// How long an idle worker parks before it looks again.
const PARK: Duration = Duration::from_millis(1);

/// One rule's candidate hashes from one owner, for worker `to`.
#[derive(Clone, Serialize, Deserialize)]
pub struct Hashes {
    to: u32,
    rule: u32,
    hashes: Vec<u64>,
}

/// Candidates and their tallies, while the verify pass runs.
type Tallying = (Vec<Candidates>, Vec<Vec<Tally>>);

/// Run one worker's part of a scan; worker 0 returns every worker's report.
pub fn work<C: DistinctCounter, M: Meta>(worker: &mut Worker, ctx: &Ctx) -> Option<Vec<Report>> {
    let me = worker.index();
    let peers = worker.peers();
    let start = Instant::now();
    let compiled = ctx.compiled.clone();
    let shard: Rc<RefCell<Option<Shard<C, M>>>> =
        Rc::new(RefCell::new(Some(Shard::sized(&compiled, &ctx.sizing))));
    let tallying: Rc<RefCell<Option<Tallying>>> = Rc::new(RefCell::new(None));
    let heard: Rc<RefCell<Vec<Vec<u64>>>> = Rc::new(RefCell::new(vec![Vec::new(); compiled.len()]));
    let reports: Rc<RefCell<Vec<Report>>> = Rc::new(RefCell::new(Vec::new()));
    let mut count_in = InputHandleVec::<u64, Packet>::new();
    let mut hash_in = InputHandleVec::<u64, Hashes>::new();
    let mut verify_in = InputHandleVec::<u64, Packet>::new();
    let mut report_in = InputHandleVec::<u64, Report>::new();
    let probes = [(); 4].map(|()| ProbeHandle::<u64>::new());
    worker.dataflow::<u64, _, _>(|scope| {
        let (rules, sh) = (compiled.clone(), shard.clone());
        scope
            .input_from(&mut count_in)
            .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                Exchange::new(|p: &Packet| p.owner as u64),
                "Count",
                move |_, _| {
                    move |input, _| {
                        input.for_each(|_, packets| {
                            let mut shard = sh.borrow_mut();
                            let shard = shard.as_mut().expect("the shard lives until pass 1 ends");
                            for p in packets.drain(..) {
                                let (records, refs) = p
                                    .into_parts(&rules)
                                    .unwrap_or_else(|e| panic!("cluster: {e}"));
                                shard.apply(&rules, &records, &refs);
                            }
                        })
                    }
                },
            )
            .probe_with(&probes[0]);
        let heard = heard.clone();
        scope
            .input_from(&mut hash_in)
            .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                Exchange::new(|h: &Hashes| h.to as u64),
                "Candidates",
                move |_, _| {
                    move |input, _| {
                        input.for_each(|_, hashes| {
                            let mut heard = heard.borrow_mut();
                            for h in hashes.drain(..) {
                                heard[h.rule as usize].extend_from_slice(&h.hashes);
                            }
                        })
                    }
                },
            )
            .probe_with(&probes[1]);
        let (rules, tallying) = (compiled.clone(), tallying.clone());
        scope
            .input_from(&mut verify_in)
            .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                Exchange::new(|p: &Packet| p.owner as u64),
                "Verify",
                move |_, _| {
                    move |input, _| {
                        input.for_each(|_, packets| {
                            let mut t = tallying.borrow_mut();
                            let (cands, tallies) =
                                t.as_mut().expect("candidates are set before any is sent");
                            for p in packets.drain(..) {
                                let (records, refs) = p
                                    .into_parts(&rules)
                                    .unwrap_or_else(|e| panic!("cluster: {e}"));
                                tally(&rules, cands, tallies, &records, &refs);
                            }
                        })
                    }
                },
            )
            .probe_with(&probes[2]);
        let reports = reports.clone();
        scope
            .input_from(&mut report_in)
            .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                Exchange::new(|_: &Report| 0),
                "Gather",
                move |_, _| {
                    move |input, _| {
                        input.for_each(|_, r| reports.borrow_mut().append(r));
                    }
                },
            )
            .probe_with(&probes[3]);
    });

    // Pass 1: count.
    ctx.progress.pass.store(1, Ordering::Relaxed);
    let opened = ctx.open(0);
    let (stats1, errors1) = {
        let sh = shard.clone();
        let rules = compiled.clone();
        run_pass(
            worker,
            ctx,
            &opened,
            count_in,
            &probes[0],
            |_, _| true,
            move |records, refs| {
                sh.borrow_mut()
                    .as_mut()
                    .expect("the shard lives until pass 1 ends")
                    .apply(&rules, records, refs)
            },
        )
    };
    let opened_report = worker
        .index()
        .is_multiple_of(ctx.workers)
        .then(|| opened.report());
    drop(opened);
    let pass1_secs = start.elapsed().as_secs_f64();
    let shard = shard.borrow_mut().take().expect("taken once");
    let mut result = ScanResult {
        shards: vec![shard],
        stats: ScanStats::default(),
        errors: Vec::new(),
    };
    let mut rule_stats = scanner::rule_stats(&ctx.rules, &result, ctx.detailed);
    let keys = result.keys();

    let (found, stats2, errors2) = if ctx.verify {
        // Candidates, known to their owners; their hashes to every worker.
        let cands = scanner::candidates(&ctx.rules, &mut result, &mut rule_stats);
        drop(result);
        let tallies: Vec<Vec<Tally>> = cands
            .iter()
            .map(|c| vec![Tally::default(); c.len()])
            .collect();
        let mut hash_in = hash_in;
        for (ri, c) in cands.iter().enumerate() {
            if c.is_empty() {
                continue;
            }
            for to in 0..peers {
                hash_in.send(Hashes {
                    to: to as u32,
                    rule: ri as u32,
                    hashes: c.hashes().to_vec(),
                });
            }
        }
        *tallying.borrow_mut() = Some((cands, tallies));
        hash_in.close();
        while !probes[1].done() {
            worker.step_or_park(Some(PARK));
        }
        let prefilters: Vec<Option<Prefilter>> = std::mem::take(&mut *heard.borrow_mut())
            .into_iter()
            .map(|h| (!h.is_empty()).then(|| Prefilter::new(&h)))
            .collect();

        // Pass 2: verify.
        ctx.progress.done.reset();
        ctx.progress.pass.store(2, Ordering::Relaxed);
        let opened = ctx.open(1);
        let rules = compiled.clone();
        let t = tallying.clone();
        let (stats2, errors2) = run_pass(
            worker,
            ctx,
            &opened,
            verify_in,
            &probes[2],
            |ri, hash| prefilters[ri].as_ref().is_some_and(|p| p.maybe(hash)),
            move |records, refs| {
                let mut t = t.borrow_mut();
                let (cands, tallies) = t.as_mut().expect("set above");
                tally(&rules, cands, tallies, records, refs)
            },
        );
        drop(opened);
        let (cands, tallies) = tallying.borrow_mut().take().expect("taken once");
        let found = scanner::verified_found(&ctx.rules, &cands, &tallies, ctx.evidence, ctx.export);
        (found, Some(stats2), errors2)
    } else {
        hash_in.close();
        verify_in.close();
        let found = scanner::one_pass_found(&ctx.rules, &mut result, ctx.evidence);
        // One scan per process: freeing millions of per-host counters one by one would only delay the exit.
        std::mem::forget(result);
        (found, None, ErrorLog::default())
    };

    // Gather at worker 0.
    let mut report_in = report_in;
    report_in.send(Report {
        process: ctx.process,
        found,
        totals: [
            Totals::from(stats1),
            stats2.map(Totals::from).unwrap_or_default(),
        ],
        errors: errors1,
        errors2: errors2.into_list(),
        rules: rule_stats,
        keys,
        opened: opened_report,
        secs: [pass1_secs, start.elapsed().as_secs_f64() - pass1_secs],
    });
    report_in.close();
    while !probes[3].done() {
        worker.step_or_park(Some(PARK));
    }
    let gathered = std::mem::take(&mut *reports.borrow_mut());
    (me == 0).then_some(gathered)
}

/// Tally the refs of a batch against this owner's candidates.
fn tally(
    rules: &[CompiledRule],
    cands: &[Candidates],
    tallies: &mut [Vec<Tally>],
    records: &[FlowRecord],
    refs: &[Ref],
) {
    for r in refs {
        let ri = r.rule as usize;
        let (c, rec) = (&rules[ri], &records[r.idx as usize]);
        if let Some(at) = cands[ri].find(r.hash, &c.key_parts(rec, r.side, r.hop)) {
            tallies[ri][at].add(c, rec, r.side);
        }
    }
}

/// Decode this worker's chunks, route every batch, apply what this worker owns with `own` and send the rest to
/// its owners through `input`; then close `input` and step until every owner has applied everything.
#[allow(clippy::too_many_arguments)]
fn run_pass<K, A>(
    worker: &mut Worker,
    ctx: &Ctx,
    opened: &Opened,
    mut input: InputHandleVec<u64, Packet>,
    probe: &ProbeHandle<u64>,
    keep: K,
    mut own: A,
) -> (ChunkStats, ErrorLog)
where
    K: Fn(usize, u64) -> bool,
    A: FnMut(&[FlowRecord], &[Ref]),
{
    let me = worker.index();
    let peers = worker.peers();
    let (share, of) = ctx.share_of(me);
    let mut router = Router::default();
    let mut outboxes: Vec<Vec<Ref>> = vec![Vec::new(); peers];
    let mut copied = Vec::new();
    let mut scratch = Vec::new();
    let mut stats = ChunkStats::default();
    let mut errors = ErrorLog::default();
    let mut epoch = 0u64;
    for &(at, chunk) in opened.chunks.iter().skip(share).step_by(of) {
        let job = Job {
            input: opened.inputs[at].clone(),
            chunk,
            left: opened.left[at].clone(),
        };
        let (decoded, error) = job.decode(&mut scratch, &ctx.progress.done, &mut |batch| {
            router.route(
                &ctx.rules,
                &ctx.compiled,
                ctx.any_filter,
                batch,
                &mut outboxes,
                &keep,
            );
            for (to, refs) in outboxes.iter_mut().enumerate() {
                if refs.is_empty() {
                    continue;
                }
                if to == me {
                    own(batch, refs);
                    refs.clear();
                } else if to / ctx.workers == ctx.process {
                    input.send(Packet::moved(to, batch, refs, &mut copied));
                } else {
                    // Encoded here, straight from the batch: Timely would copy the records out and encode them.
                    input.send(Packet::encoded(to, batch, refs, &mut copied));
                    refs.clear();
                }
            }
            (ctx.progress.done.flows).fetch_add(batch.len() as u64, Ordering::Relaxed);
        });
        stats += decoded;
        if let Some(e) = error {
            errors.push(e);
        }
        epoch += 1;
        input.advance_to(epoch);
        worker.step();
        while probe.less_than(&epoch.saturating_sub(SLACK)) {
            worker.step_or_park(Some(PARK));
        }
    }
    input.close();
    while !probe.done() {
        worker.step_or_park(Some(PARK));
    }
    (stats, errors)
}
