//! `cargo xtask fuzz [--secs N] [TARGET…]` and `cargo xtask fuzz-seeds`.
//!
//! The fuzz targets live in `fuzz/`, a cargo-fuzz workspace of its own. They
//! need a nightly toolchain and `cargo-fuzz`: the nightly is looked up with
//! `rustup toolchain list` (never installed), `cargo-fuzz` is installed with
//! `cargo install cargo-fuzz --locked` when missing. Where either cannot be
//! had, the step says so and is skipped: it never passes silently.
//!
//! Builds go to `$CARGO_TARGET_DIR/../fuzz-target` (outside the clone, reused
//! between runs) or, without `CARGO_TARGET_DIR`, to `fuzz/target`. Each
//! target runs on a working corpus in that directory, with the checked-in
//! seeds (`fuzz/seeds/<target>`) as a second, read-only corpus; crash inputs
//! are written to `fuzz/artifacts/<target>/` (ignored by git).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cargo, root, run};

/// Seconds per target when `--secs` is not given.
pub const DEFAULT_SECS: u64 = 60;

/// Build options shared by `build` and `run` (so that `run` reuses the build):
/// no sanitizer (the workspace forbids `unsafe`; ASan would mostly slow the
/// run), overflow checks on, 16 codegen units for a shorter build.
const BUILD_FLAGS: &[&str] = &[
    "--sanitizer",
    "none",
    "--debug-assertions",
    "--codegen-units",
    "16",
];

/// What one target's run gave.
struct Outcome {
    target: String,
    executions: Option<u64>,
    crashed: bool,
    detail: String,
}

fn fuzz_dir() -> PathBuf {
    root().join("fuzz")
}

/// Where the fuzz builds and working corpora go.
fn fuzz_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) => dir
            .parent()
            .map(|p| p.join("fuzz-target"))
            .unwrap_or_else(|| fuzz_dir().join("target")),
        None => fuzz_dir().join("target"),
    }
}

/// The targets: one `fuzz/fuzz_targets/<name>.rs` each.
fn targets() -> Result<Vec<String>> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// `cargo` from `PATH` (the rustup proxy, which understands `+nightly`),
/// without the variables of the cargo that runs xtask.
fn rustup_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    for var in ["CARGO", "RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN", "RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    cmd
}

/// The nightly toolchain's name if rustup lists one.
fn nightly() -> Option<String> {
    let out = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|t| t.starts_with("nightly"))
        .map(|t| {
            // `nightly-x86_64-unknown-linux-gnu` → `+nightly` works for the
            // channel; a dated nightly keeps its date.
            if t.starts_with("nightly-20") {
                t.split('-').take(4).collect::<Vec<_>>().join("-")
            } else {
                "nightly".to_owned()
            }
        })
}

fn has_cargo_fuzz(toolchain: &str) -> bool {
    rustup_cargo()
        .args([&format!("+{toolchain}"), "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The toolchain to fuzz with, installing cargo-fuzz if needed; `Err` with
/// the reason when fuzzing is impossible here.
fn prepare() -> std::result::Result<String, String> {
    let toolchain = nightly().ok_or_else(|| {
        "no nightly toolchain (`rustup toolchain list` shows none; cargo fuzz needs one)".to_owned()
    })?;
    if !has_cargo_fuzz(&toolchain) {
        eprintln!("==> fuzz: cargo-fuzz is missing; cargo install cargo-fuzz --locked");
        let installed = rustup_cargo()
            .args(["install", "cargo-fuzz", "--locked"])
            .status()
            .is_ok_and(|s| s.success());
        if !installed || !has_cargo_fuzz(&toolchain) {
            return Err("cargo-fuzz could not be installed".to_owned());
        }
    }
    Ok(toolchain)
}

/// The executions libFuzzer reports at the end of a run.
fn executions(log: &str) -> Option<u64> {
    let number = |s: &str| s.trim().parse::<u64>().ok();
    log.lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("stat::number_of_executed_units:")
                .and_then(number)
        })
        .or_else(|| {
            // `#1234\tDONE   cov: …`
            log.lines().rev().find_map(|l| {
                let rest = l.strip_prefix('#')?;
                let (n, tail) = rest.split_once(|c: char| c.is_whitespace())?;
                tail.trim_start().starts_with("DONE").then(|| number(n))?
            })
        })
        .or_else(|| {
            // `Done 1234 runs in 60 second(s)`
            log.lines().rev().find_map(|l| {
                l.strip_prefix("Done ")?
                    .split_whitespace()
                    .next()
                    .and_then(number)
            })
        })
}

/// The lines worth showing from a crashed run: the panic, libFuzzer's
/// verdict and where it wrote the input.
fn crash_summary(log: &str) -> String {
    log.lines()
        .filter(|l| {
            l.contains("panicked at")
                || l.contains("==ERROR")
                || l.contains("SUMMARY")
                || l.contains("Test unit written")
                || l.contains("assertion")
                || l.starts_with("  left")
                || l.starts_with("  right")
        })
        .take(12)
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_target(toolchain: &str, target: &str, secs: u64, target_dir: &Path) -> Result<Outcome> {
    let corpus = target_dir.join("corpus").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| corpus.display().to_string())?;
    let seeds = fuzz_dir().join("seeds").join(target);
    let mut cmd = rustup_cargo();
    cmd.current_dir(fuzz_dir())
        .args([&format!("+{toolchain}"), "fuzz", "run", target])
        .args(BUILD_FLAGS)
        .arg("--target-dir")
        .arg(target_dir)
        .arg(&corpus);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={secs}"))
        .args(["-print_final_stats=1", "-timeout=10"]);
    eprintln!("==> fuzz {target} ({secs} s)");
    let out = cmd
        .output()
        .with_context(|| format!("fuzz {target}: could not start"))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let executions = executions(&log);
    let crashed = !out.status.success();
    let detail = if crashed {
        let summary = crash_summary(&log);
        if summary.is_empty() {
            // Not a crash report: show the end of the output (a build error…).
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        } else {
            summary
        }
    } else {
        String::new()
    };
    Ok(Outcome {
        target: target.to_owned(),
        executions,
        crashed,
        detail,
    })
}

/// Builds every target, runs each for `secs` seconds and prints per target
/// the executions and crashes. Fails if a target crashes (or does not build);
/// prints why and returns `Ok` when fuzzing is impossible on this machine.
pub fn fuzz(secs: u64, only: &[String]) -> Result<()> {
    let toolchain = match prepare() {
        Ok(t) => t,
        Err(reason) => {
            eprintln!("==> fuzz: SKIPPED: {reason}");
            return Ok(());
        }
    };
    let all = targets()?;
    for t in only {
        if !all.contains(t) {
            bail!("no fuzz target {t} (targets: {})", all.join(", "));
        }
    }
    let chosen: Vec<String> = if only.is_empty() { all } else { only.to_vec() };
    let target_dir = fuzz_target_dir();
    run(
        &format!("fuzz build (+{toolchain}, {})", target_dir.display()),
        rustup_cargo()
            .current_dir(fuzz_dir())
            .args([&format!("+{toolchain}"), "fuzz", "build"])
            .args(BUILD_FLAGS)
            .arg("--target-dir")
            .arg(&target_dir),
    )?;
    let mut outcomes = Vec::new();
    for target in &chosen {
        outcomes.push(run_target(&toolchain, target, secs, &target_dir)?);
    }
    eprintln!("==> fuzz: {} targets, {secs} s each", outcomes.len());
    for o in &outcomes {
        let execs = o
            .executions
            .map_or_else(|| "? executions".to_owned(), |n| format!("{n} executions"));
        let crashes = if o.crashed { 1 } else { 0 };
        eprintln!("fuzz {:<22} {execs:>22}, {crashes} crashes", o.target);
        if o.crashed {
            eprintln!("{}", o.detail);
        }
    }
    let crashed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.crashed)
        .map(|o| o.target.as_str())
        .collect();
    if !crashed.is_empty() {
        bail!(
            "fuzz: {} crashed (inputs under fuzz/artifacts/)",
            crashed.join(", ")
        );
    }
    Ok(())
}

/// Rewrites `fuzz/seeds/` from the project's own encoders (the fuzz crate's
/// `write_seeds` example, built with the pinned toolchain: it needs no
/// instrumentation).
pub fn seeds() -> Result<()> {
    let seeds = fuzz_dir().join("seeds");
    run(
        "fuzz seeds",
        cargo()
            .current_dir(fuzz_dir())
            .args(["run", "--quiet", "--example", "write_seeds", "--"])
            .arg(&seeds),
    )
}

/// The `compile_fail` doc tests of `musig2-core` name error codes that only a
/// nightly rustdoc checks: run them there too (skipped, with a message,
/// without a nightly).
pub fn nightly_doc_tests() -> Result<()> {
    let Some(toolchain) = nightly() else {
        eprintln!("==> compile_fail error codes: SKIPPED: no nightly toolchain");
        return Ok(());
    };
    let dir = fuzz_target_dir()
        .parent()
        .map(|p| p.join("nightly-doc-target"))
        .unwrap_or_else(|| root().join("target/nightly-doc"));
    run(
        &format!("compile_fail error codes (+{toolchain} rustdoc, musig2-core)"),
        rustup_cargo()
            .current_dir(root())
            .args([
                &format!("+{toolchain}"),
                "test",
                "--quiet",
                "-p",
                "musig2-core",
                "--doc",
            ])
            .env("CARGO_TARGET_DIR", dir),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_from_final_stats_done_or_done_runs() {
        let stats = "#1024\tpulse  cov: 10\n#4096\tDONE   cov: 12 ft: 30\nDone 4096 runs in 5 second(s)\nstat::number_of_executed_units: 4100\n";
        assert_eq!(executions(stats), Some(4100));
        assert_eq!(
            executions("#77\tDONE   cov: 1\nDone 77 runs in 1 second(s)\n"),
            Some(77)
        );
        assert_eq!(executions("Done 12 runs in 1 second(s)\n"), Some(12));
        assert_eq!(executions("#12\tINITED cov: 3\n"), None);
    }
}
