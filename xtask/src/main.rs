//! The project's own automation, run as `cargo xtask <command>`:
//!
//! * `ci`: format check, clippy (`-D warnings`), the layering check,
//!   `cargo deny` where it is installed, the doc tests (and, with a nightly
//!   toolchain, `musig2-core`'s `compile_fail` error codes), a 5-second run of
//!   every fuzz target, and every other test (last, so that its summary closes
//!   the output). The README's test command and `.ci/run` are this command.
//! * `fuzz [--secs N] [TARGET…]`: builds the cargo-fuzz targets in `fuzz/`
//!   and runs each for N seconds (default 60), printing executions and
//!   crashes per target; fails on a crash; says so and skips where no nightly
//!   toolchain or cargo-fuzz can be had (see `fuzz.rs`).
//! * `fuzz-seeds`: rewrites the checked-in seed corpus `fuzz/seeds/` from the
//!   project's own encoders.
//! * `layers`: fails if a crate depends on a crate at its own level or above,
//!   or if `musig2-core` or `lotus-tx` pulls in an I/O or async crate.
//! * `bench core`: runs the `musig2-core` criterion benchmarks (ours and the
//!   libsecp256k1 baseline in the same run), prints one JSON object per
//!   compared operation, and rewrites the table in `docs/PERFORMANCE.md`.
//! * `bench net`: runs `lotus-musig2 demo` (release build) for N = 2, 10, 20
//!   and 50 signers on loopback, takes the median of the session latency after
//!   discovery and of the discovery time, compares them with the same signers'
//!   session run in one process (crypto only, measured in the same run), prints
//!   one JSON object per measurement and rewrites the network table.
//! * `faults [SCENARIO…]`: the multi-host fault suite (root; one node per
//!   network namespace; loss, delay, bandwidth, partitions, SIGKILL): one
//!   JSON object per scenario, and the table in `docs/OPERATIONS.md` (see
//!   `faults/mod.rs`). `faults-proxy` is its TCP delay proxy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

mod faults;
mod fuzz;
mod scale;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["ci"] => ci(),
        ["layers"] => layers(),
        ["bench", "core"] => bench_core(),
        ["bench", "net"] => bench_net(),
        ["bench", "scale"] => scale::bench(),
        ["fuzz", rest @ ..] => fuzz_command(rest),
        ["fuzz-seeds"] => fuzz::seeds(),
        ["faults", rest @ ..] => faults::faults(rest),
        ["faults-proxy", rest @ ..] => faults::proxy(rest),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: cargo xtask <ci | layers | bench core | bench net | bench scale | fuzz [--secs N] [TARGET…] | fuzz-seeds | faults [SCENARIO…]>"
    );
    std::process::exit(2);
}

/// `fuzz [--secs N] [TARGET…]`.
fn fuzz_command(args: &[&str]) -> Result<()> {
    let mut secs = fuzz::DEFAULT_SECS;
    let mut targets = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--secs" => {
                secs = rest
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .context("--secs needs a positive number of seconds")?;
            }
            flag if flag.starts_with('-') => usage(),
            target => targets.push(target.to_owned()),
        }
    }
    fuzz::fuzz(secs, &targets)
}

/// Seconds per fuzz target in `ci`.
const CI_FUZZ_SECS: u64 = 5;

/// The workspace root of the current directory, found at run time (the
/// binary may be shared between checkouts through a common target directory).
fn root() -> PathBuf {
    let located = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output();
    match located {
        Ok(out) if out.status.success() => {
            let manifest = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
        }
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    }
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(step: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("==> {step}");
    let status = cmd
        .status()
        .with_context(|| format!("{step}: could not start"))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

fn has_subcommand(name: &str) -> bool {
    cargo()
        .args([name, "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn ci() -> Result<()> {
    run("format", cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    eprintln!("==> layers");
    layers()?;
    if has_subcommand("deny") {
        run(
            "cargo deny",
            cargo().args(["deny", "check", "licenses", "bans", "sources"]),
        )?;
    } else {
        eprintln!(
            "==> cargo deny: not installed, skipped (install: cargo install cargo-deny --locked)"
        );
    }
    run(
        "doc tests",
        cargo().args(["test", "--workspace", "--all-features", "--doc"]),
    )?;
    fuzz::nightly_doc_tests()?;
    // Every fuzz target for a few seconds (built once; the build lives
    // outside the clone and is reused by later runs); skipped, with a
    // message, where no nightly toolchain or cargo-fuzz can be had.
    fuzz::fuzz(CI_FUZZ_SECS, &[])?;
    if has_subcommand("nextest") {
        run(
            "tests (nextest)",
            cargo().args([
                "nextest",
                "run",
                "--workspace",
                "--all-features",
                "--no-fail-fast",
            ]),
        )?;
    } else {
        run(
            "tests",
            cargo().args([
                "test",
                "--workspace",
                "--all-features",
                "--no-fail-fast",
                "--lib",
                "--bins",
                "--tests",
            ]),
        )?;
    }
    eprintln!("==> ci: all steps passed");
    Ok(())
}

/// Level of each workspace crate: a crate may depend only on lower levels.
const LEVELS: &[(&str, u8)] = &[
    ("musig2-core", 0),
    ("lotus-tx", 1),
    ("musig2-election", 1),
    ("musig2-security", 1),
    ("musig2-identity", 2),
    ("musig2-net", 3),
    ("musig2-coordinator", 4),
    ("lotus-musig2", 5),
    ("lotus-musig2-cli", 6),
];

/// The crates whose dependency trees must hold no I/O crate.
const NO_IO_CRATES: &[&str] = &["musig2-core", "lotus-tx"];

/// Crates that mean I/O, threads or async: never in the trees of [`NO_IO_CRATES`].
const FORBIDDEN_IN_CORE: &[&str] = &[
    "tokio",
    "libp2p",
    "mio",
    "futures",
    "async-std",
    "reqwest",
    "hyper",
    "socket2",
    "redb",
    "rusqlite",
];

fn layers() -> Result<()> {
    let out = cargo()
        .args(["metadata", "--format-version", "1"])
        .output()
        .context("cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout)?;
    let levels: BTreeMap<&str, u8> = LEVELS.iter().copied().collect();
    let mut problems = Vec::new();

    let packages = meta["packages"].as_array().context("packages")?;
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .context("workspace_members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for pkg in packages
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(id)))
    {
        let name = pkg["name"].as_str().unwrap_or_default();
        let Some(&level) = levels.get(name) else {
            continue;
        };
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if let Some(&dep_level) = levels.get(dep_name)
                && dep_level >= level
            {
                problems.push(format!(
                    "{name} (level {level}) depends on {dep_name} (level {dep_level}): only lower levels are allowed"
                ));
            }
        }
    }

    // Walk the normal and build dependencies of each no-I/O crate in the resolved graph.
    let names: BTreeMap<&str, &str> = packages
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let nodes: BTreeMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .context("resolve")?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let mut sizes = Vec::new();
    for root in NO_IO_CRATES {
        let root_id = names
            .iter()
            .find(|(_, n)| **n == *root)
            .map(|(id, _)| *id)
            .context(*root)?;
        let mut seen = BTreeSet::new();
        let mut stack = vec![root_id];
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            let name = names.get(id).copied().unwrap_or_default();
            if FORBIDDEN_IN_CORE
                .iter()
                .any(|f| name == *f || name.starts_with(&format!("{f}-")))
            {
                problems.push(format!("{root} pulls in the I/O crate {name}"));
            }
            for dep in nodes
                .get(id)
                .and_then(|n| n["deps"].as_array())
                .into_iter()
                .flatten()
            {
                let runtime = dep["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null() || k["kind"] == "build");
                if let (true, Some(pkg)) = (runtime, dep["pkg"].as_str()) {
                    stack.push(pkg);
                }
            }
        }
        sizes.push(format!("{root} tree has {} crates", seen.len()));
    }

    if problems.is_empty() {
        eprintln!(
            "layers: ok ({} crates checked; {}, none does I/O)",
            LEVELS.len(),
            sizes.join(", ")
        );
        Ok(())
    } else {
        for p in &problems {
            eprintln!("layers: {p}");
        }
        bail!("{} layering violation(s)", problems.len())
    }
}

/// Compared operations: criterion group, what the baseline is.
const CORE_OPS: &[(&str, &str)] = &[
    ("key_agg_n2", "libsecp256k1 musig"),
    ("key_agg_n10", "libsecp256k1 musig"),
    ("key_agg_n100", "libsecp256k1 musig"),
    ("nonce_gen", "libsecp256k1 musig"),
    ("nonce_agg", "libsecp256k1 musig"),
    ("session_context", "libsecp256k1 musig"),
    ("partial_sign", "libsecp256k1 musig"),
    ("partial_verify", "libsecp256k1 musig"),
    ("partial_sig_agg", "libsecp256k1 musig"),
    ("final_verify", "libsecp256k1 BIP340 verify"),
    ("session_n2", "libsecp256k1 musig"),
    ("session_n10", "libsecp256k1 musig"),
    ("session_n2_aggregate_first", "libsecp256k1 musig"),
    ("session_n10_aggregate_first", "libsecp256k1 musig"),
];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn median_ns(group: &str, function: &str) -> Result<f64> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(function)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let v: Value = serde_json::from_str(&text)?;
    v["median"]["point_estimate"].as_f64().context("median")
}

fn bench_core() -> Result<()> {
    run(
        "criterion",
        cargo().args(["bench", "-p", "musig2-core", "--bench", "musig2"]),
    )?;
    let mut rows = Vec::new();
    for (op, baseline) in CORE_OPS {
        let ours = median_ns(op, "ours")?;
        let base = median_ns(op, "baseline")?;
        let ratio = ours / base;
        println!(
            "{}",
            json!({"op": op, "ours_ns": ours.round(), "baseline": baseline, "baseline_ns": base.round(), "ratio": (ratio * 100.0).round() / 100.0})
        );
        rows.push(format!(
            "| {op} | {} | {baseline} | {} | {ratio:.2} |",
            fmt_ns(ours),
            fmt_ns(base)
        ));
    }
    let table = format!(
        "| operation | ours (median) | baseline | baseline (median) | ratio |\n| --- | --- | --- | --- | --- |\n{}\n",
        rows.join("\n")
    );
    replace_table("bench-core", &table)
}

/// (signers, runs): fewer runs for the large networks.
const NET_RUNS: &[(usize, usize)] = &[(2, 7), (10, 5), (20, 3), (50, 1)];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn bench_net() -> Result<()> {
    run(
        "release build",
        cargo().args(["build", "--release", "-p", "lotus-musig2-cli"]),
    )?;
    let binary = target_dir().join("release/lotus-musig2");
    let mut rows = Vec::new();
    for &(n, runs) in NET_RUNS {
        let (mut after, mut discovery, mut in_process) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let (a, d, b) = scale::demo(&binary, n)?;
            after.push(a);
            discovery.push(d);
            in_process.push(b);
        }
        let (after, discovery, base) = (median(after), median(discovery), median(in_process));
        for (op, ours) in [
            (format!("p2p_session_n{n}"), after),
            (format!("p2p_discovery_join_n{n}"), discovery),
        ] {
            let ratio = ours / base;
            println!(
                "{}",
                json!({"op": op, "ours_ns": (ours * 1e6).round(), "baseline": "same session in one process", "baseline_ns": (base * 1e6).round(), "ratio": (ratio * 10.0).round() / 10.0, "runs": runs})
            );
            rows.push(format!(
                "| {op} | {runs} | {ours:.1} ms | {base:.2} ms | {ratio:.0}× |"
            ));
        }
    }
    let table = format!(
        "| measurement | runs | ours (median) | in-process session (median) | ratio |\n| --- | --- | --- | --- | --- |\n{}\n",
        rows.join("\n")
    );
    replace_table("bench-net", &table)
}

fn replace_table(name: &str, table: &str) -> Result<()> {
    let doc = root().join("docs/PERFORMANCE.md");
    let text = std::fs::read_to_string(&doc).with_context(|| doc.display().to_string())?;
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let (Some(b), Some(e)) = (text.find(&begin), text.find(&end)) else {
        bail!("{} lacks the {begin} … {end} markers", doc.display());
    };
    let updated = format!("{}{begin}\n{table}{}", &text[..b], &text[e..]);
    std::fs::write(&doc, updated)?;
    eprintln!("==> docs/PERFORMANCE.md updated ({name})");
    Ok(())
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        format!("{ns:.0} ns")
    }
}
