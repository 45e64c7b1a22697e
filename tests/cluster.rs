//! Cluster scans (docs/CLUSTER.md): 1, 2 and 4 processes on localhost report byte for byte the finding records one
//! process reports, with shared and with local inputs, for the built-in rules and `--exact`, on a generated
//! capture and on ../shared/data; a process that dies or cannot be reached fails the run clearly, in time.

mod common;

use common::{bin, require_data, stderr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A generated capture (12 five-minute files), made once per test binary.
fn capture(flows: u64) -> PathBuf {
    static SMALL: OnceLock<PathBuf> = OnceLock::new();
    static LARGE: OnceLock<PathBuf> = OnceLock::new();
    let cell = if flows <= 300_000 { &SMALL } else { &LARGE };
    cell.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cluster-{flows}"));
        let _ = std::fs::remove_dir_all(&dir);
        let out = bin()
            .args(["gen", "-o"])
            .arg(&dir)
            .args([
                "--flows",
                &flows.to_string(),
                "--sources",
                "20000",
                "--seed",
                "5",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        // The truth beside the capture is not flow data.
        std::fs::remove_file(dir.join("truth.json")).unwrap();
        dir
    })
    .clone()
}

/// The finding records of a JSON report, in order.
fn findings(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"type\":\"finding\""))
        .map(str::to_string)
        .collect()
}

fn one_process(flags: &[&str], paths: &[&Path]) -> Vec<String> {
    let out = bin()
        .args(["scan", "-q", "-f", "json"])
        .args(flags)
        .args(paths)
        .output()
        .unwrap();
    assert!(out.status.code().unwrap_or(9) <= 2, "{}", stderr(&out));
    let f = findings(&out);
    assert!(!f.is_empty(), "the comparison needs findings");
    f
}

/// `flowsketch cluster -n N -w W -- scan -q -f json FLAGS PATHS`, within a minute.
fn cluster(n: usize, workers: usize, flags: &[&str], paths: &[String]) -> Output {
    let out = bin()
        .args([
            "cluster",
            "-n",
            &n.to_string(),
            "-w",
            &workers.to_string(),
            "--timeout",
            "60",
        ])
        .args(["--", "scan", "-q", "-f", "json", "--connect-timeout", "20"])
        .args(flags)
        .args(paths)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "{n} processes: {}",
        stderr(&out)
    );
    out
}

fn same_findings(n: usize, workers: usize, flags: &[&str], paths: &[String], expected: &[String]) {
    let out = cluster(n, workers, flags, paths);
    let got = findings(&out);
    assert_eq!(
        got.len(),
        expected.len(),
        "{n} x {workers} {flags:?}: {}",
        stderr(&out)
    );
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g, e, "{n} x {workers} {flags:?}");
    }
}

fn text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Deal the files of `dir` (in name order) out to `n` folders under `into`, `part0` to `part{n-1}`, as hard
/// links; returns the `part{p}` pattern.
fn split(dir: &Path, n: usize, into: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let _ = std::fs::remove_dir_all(into);
    for p in 0..n {
        std::fs::create_dir_all(into.join(format!("part{p}"))).unwrap();
    }
    for (i, f) in files.iter().enumerate() {
        let to = into
            .join(format!("part{}", i % n))
            .join(f.file_name().unwrap());
        std::fs::hard_link(f, &to)
            .or_else(|_| std::fs::copy(f, &to).map(|_| ()))
            .unwrap();
    }
    text(&into.join("part{p}"))
}

#[test]
fn generated_capture_gives_the_findings_of_one_process_on_1_2_and_4_processes() {
    let cap = capture(200_000);
    let paths = [text(&cap)];
    for flags in [&[][..], &["--exact"][..]] {
        let expected = one_process(flags, &[&cap]);
        for n in [1, 2, 4] {
            same_findings(n, 1, flags, &paths, &expected);
        }
    }
    // Two workers in each of two processes, and one process of two Timely workers.
    let expected = one_process(&[], &[&cap]);
    same_findings(2, 2, &[], &paths, &expected);
    same_findings(1, 2, &[], &paths, &expected);
}

#[test]
fn local_inputs_give_the_findings_of_one_process_over_all_of_them() {
    let cap = capture(200_000);
    let tmp = tempfile::tempdir().unwrap();
    for flags in [&["--local-inputs"][..], &["--local-inputs", "--exact"][..]] {
        let expected = one_process(&flags[1..], &[&cap]);
        for n in [2, 4] {
            let parts = split(&cap, n, &tmp.path().join(format!("split{n}")));
            same_findings(n, 1, flags, &[parts], &expected);
        }
    }
}

#[test]
fn real_captures_give_the_findings_of_one_process_on_2_and_4_processes() {
    let Some(data) =
        require_data("real_captures_give_the_findings_of_one_process_on_2_and_4_processes")
    else {
        return;
    };
    // Each scan of the real captures takes seconds (bzip2, pcap): two sizes for the built-in rules, one for exact.
    let paths = [text(&data)];
    let expected = one_process(&[], &[&data]);
    for n in [2, 4] {
        same_findings(n, 1, &[], &paths, &expected);
    }
    // The broken inputs among them are told as one process tells them, and the summary counts the same.
    let errors = |o: &Output| -> Vec<String> {
        let mut v: Vec<String> = stderr(o).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let summary = |o: &Output| -> serde_json::Value {
        let line = String::from_utf8_lossy(&o.stdout)
            .lines()
            .rfind(|l| l.contains("\"type\":\"summary\""))
            .unwrap()
            .to_string();
        let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
        for k in ["seconds", "peak_memory_bytes", "keys_tracked", "rules"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    let one = bin()
        .args(["scan", "-q", "-f", "json"])
        .arg(&data)
        .output()
        .unwrap();
    let two = cluster(2, 1, &[], &paths);
    assert_eq!(errors(&one), errors(&two));
    assert_eq!(summary(&one), summary(&two));
    let expected = one_process(&["--exact"], &[&data]);
    same_findings(2, 1, &["--exact"], &paths, &expected);
    // Local inputs: each process its own folders (NetFlow templates stay with the files that need them).
    let tmp = tempfile::tempdir().unwrap();
    let mut folders: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    for p in 0..2 {
        std::fs::create_dir_all(tmp.path().join(format!("part{p}"))).unwrap();
    }
    for (i, f) in folders.iter().enumerate() {
        std::os::unix::fs::symlink(
            f,
            tmp.path()
                .join(format!("part{}", i % 2))
                .join(f.file_name().unwrap()),
        )
        .unwrap();
    }
    let dirs: Vec<&Path> = folders.iter().map(PathBuf::as_path).collect();
    let expected = one_process(&[], &dirs);
    let parts = text(&tmp.path().join("part{p}"));
    same_findings(2, 1, &["--local-inputs"], &[parts], &expected);
}

/// A hostfile of `n` free localhost ports.
fn hostfile(dir: &Path, n: usize) -> (PathBuf, Vec<String>) {
    let addresses = flowsketch::cluster::launcher::free_addresses(n).unwrap();
    let path = dir.join("hosts.txt");
    std::fs::write(&path, addresses.join("\n")).unwrap();
    (path, addresses)
}

fn scan_process(
    hosts: &Path,
    n: usize,
    p: usize,
    timeout: &str,
    flags: &[&str],
    paths: &[&Path],
) -> Child {
    bin()
        .args([
            "scan",
            "-q",
            "-f",
            "json",
            "-n",
            &n.to_string(),
            "-p",
            &p.to_string(),
        ])
        .arg("-h")
        .arg(hosts)
        .args(["--connect-timeout", timeout])
        .args(flags)
        .args(paths)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for `child` at most `limit`; kill it and fail when it takes longer.
fn finish(mut child: Child, limit: Duration, what: &str) -> (Output, Duration) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), start.elapsed())
}

#[test]
fn an_unreachable_process_fails_the_scan_naming_it_within_the_timeout() {
    let cap = capture(200_000);
    let tmp = tempfile::tempdir().unwrap();
    let (hosts, addresses) = hostfile(tmp.path(), 3);
    // Process 0 alone: processes 1 and 2 never connect.
    let child = scan_process(&hosts, 3, 0, "2", &[], &[&cap]);
    let (out, took) = finish(child, Duration::from_secs(20), "process 0");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "no findings from an incomplete cluster"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("process 1 at {}", addresses[1])) && err.contains("within 2 s"),
        "{err}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    // Process 2 alone: it cannot reach process 0.
    let child = scan_process(&hosts, 3, 2, "1", &[], &[&cap]);
    let (out, _) = finish(child, Duration::from_secs(20), "process 2");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("process 0 at {}", addresses[0])),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_process_that_dies_fails_the_scan_naming_it_without_findings() {
    let cap = capture(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let (hosts, addresses) = hostfile(tmp.path(), 2);
    let p0 = scan_process(&hosts, 2, 0, "5", &[], &[&cap]);
    let mut p1 = scan_process(&hosts, 2, 1, "5", &[], &[&cap]);
    std::thread::sleep(Duration::from_millis(400));
    p1.kill().unwrap();
    let _ = p1.wait();
    let (out, _) = finish(
        p0,
        Duration::from_secs(30),
        "process 0 after process 1 died",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "no findings from an incomplete cluster"
    );
    // Killed while connecting or while scanning: either way process 1 is named.
    let err = stderr(&out);
    assert!(
        err.contains(&format!("process 1 at {}", addresses[1])),
        "{err}"
    );
}

#[test]
fn processes_with_other_definitions_or_flags_are_refused_naming_them() {
    let cap = capture(200_000);
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("site.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nid = \"S1\"\nkey = \"src\"\ncount = \"distinct dst\"\nabove = 50\n",
    )
    .unwrap();
    let rules = rules.to_str().unwrap();
    for other in [&["-r", rules][..], &["--admit", "0.2"], &["--no-verify"]] {
        let (hosts, addresses) = hostfile(tmp.path(), 2);
        let p0 = scan_process(&hosts, 2, 0, "10", &[], &[&cap]);
        let p1 = scan_process(&hosts, 2, 1, "10", other, &[&cap]);
        let (out, _) = finish(p0, Duration::from_secs(30), "process 0");
        let _ = finish(p1, Duration::from_secs(30), "process 1");
        assert_eq!(out.status.code(), Some(2), "{other:?}");
        assert!(out.stdout.is_empty(), "no findings from a refused cluster");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("process 1 at {}", addresses[1]))
                && err.contains("other definitions or flags"),
            "{other:?}: {err}"
        );
    }
    // The same definitions and flags (--memory is each machine's own) connect.
    let (hosts, _) = hostfile(tmp.path(), 2);
    let p0 = scan_process(&hosts, 2, 0, "10", &["-r", rules], &[&cap]);
    let p1 = scan_process(
        &hosts,
        2,
        1,
        "10",
        &["-r", rules, "--memory", "64M"],
        &[&cap],
    );
    let (out, _) = finish(p0, Duration::from_secs(60), "process 0");
    assert!(finish(p1, Duration::from_secs(60), "process 1")
        .0
        .status
        .success());
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
}

/// The index (`-p`) a child process of `launcher` was started with, for each child.
#[cfg(target_os = "linux")]
fn children(launcher: u32) -> Vec<(u32, usize)> {
    let list = std::fs::read_to_string(format!("/proc/{launcher}/task/{launcher}/children"))
        .unwrap_or_default();
    list.split_whitespace()
        .filter_map(|pid| {
            let pid: u32 = pid.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<String> = cmd
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let at = args.iter().position(|a| a == "-p")?;
            Some((pid, args.get(at + 1)?.parse().ok()?))
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn the_launcher_stops_the_others_and_names_a_process_that_was_killed() {
    let cap = capture(1_000_000);
    let launcher = bin()
        .args([
            "cluster",
            "-n",
            "3",
            "--timeout",
            "60",
            "--",
            "scan",
            "-q",
            "-f",
            "json",
        ])
        .arg(&cap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut kids = Vec::new();
    while kids.len() < 3 && start.elapsed() < Duration::from_secs(10) {
        kids = children(launcher.id());
        std::thread::sleep(Duration::from_millis(10));
    }
    let &(pid, index) = kids.iter().find(|k| k.1 == 2).expect("process 2 started");
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let (out, _) = finish(
        launcher,
        Duration::from_secs(30),
        "the launcher after a process died",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        findings(&out).is_empty(),
        "no findings from an incomplete cluster"
    );
    let err = stderr(&out);
    assert!(err.contains(&format!("process {index}")), "{err}");
    // The others were stopped.
    for (pid, _) in kids {
        assert!(
            !Path::new(&format!("/proc/{pid}/cmdline")).exists() || {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                stat.contains(") Z")
            }
        );
    }
}

#[test]
fn the_launcher_stops_a_run_past_its_timeout() {
    let cap = capture(1_000_000);
    let out = bin()
        .args([
            "cluster",
            "-n",
            "2",
            "--timeout",
            "0.3",
            "--",
            "scan",
            "-q",
            "-f",
            "json",
        ])
        .arg(&cap)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(findings(&out).is_empty());
    assert!(stderr(&out).contains("timed out after"), "{}", stderr(&out));
}

#[test]
fn standard_input_and_bad_cluster_flags_are_refused() {
    let out = bin().args(["scan", "-w", "1", "-"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("standard input cannot be read by a cluster"),
        "{}",
        stderr(&out)
    );
    let out = bin()
        .args(["scan", "-n", "2", "-p", "2", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--process 2 is not below the process count 2"),
        "{}",
        stderr(&out)
    );
    // -h is the hostfile; help is --help.
    let out = bin().args(["scan", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--hostfile"));
}

#[test]
fn a_cluster_exports_the_sketches_of_one_process_and_refuses_to_save_state() {
    let cap = capture(200_000);
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one.jsonl"), tmp.path().join("two.jsonl"));
    let out = bin()
        .args(["scan", "-q", "-f", "json", "--export-sketches"])
        .arg(&one)
        .arg(&cap)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    cluster(2, 1, &["--export-sketches", &text(&two)], &[text(&cap)]);
    let (one, two) = (
        std::fs::read_to_string(one).unwrap(),
        std::fs::read_to_string(two).unwrap(),
    );
    assert!(one.lines().count() > 0, "the comparison needs sketches");
    assert_eq!(one, two);

    let out = cluster(
        2,
        1,
        &["--save-state", &text(&tmp.path().join("state"))],
        &[text(&cap)],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--save-state is for scans in one process"),
        "{}",
        stderr(&out)
    );
}
