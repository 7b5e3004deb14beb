//! `cargo xtask bench scale`: the cost curve of the P2P stack (release
//! build), one JSON object per line on stdout, and the table in
//! `docs/PERFORMANCE.md`:
//!
//! * `{"op":"p2p_session","n":N,"ms":X,"in_process_ms":Y,"ratio":X/Y}` for
//!   N = 2, 5, 10, 20, 50 (`lotus-musig2 demo`: N nodes on loopback, the
//!   session after discovery, against the same session computed in one
//!   process in the same run), then `{"op":"p2p_session_growth", …}`: the
//!   exponent k of ms ≈ c·n^k fitted over the curve;
//! * `{"op":"discovery_join","n":N,"ms":X}` for N = 20, 50 (announce to
//!   every co-signer joined);
//! * `{"op":"concurrent_sessions","nodes":3,"sessions":500,…}` and
//!   `{"op":"idle_rss","mib":M}` (`load.rs`: three `node` daemons).
//!
//! Figures are medians over several runs (fewer for the large networks).

mod http;
mod load;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// (signers, runs).
const CURVE: &[(usize, usize)] = &[(2, 7), (5, 5), (10, 5), (20, 3), (50, 3)];
/// (nodes, runs) of discovery + join.
const DISCOVERY: &[usize] = &[20, 50];

/// `cargo xtask bench scale`.
pub fn bench() -> Result<()> {
    super::run(
        "release build",
        super::cargo().args(["build", "--release", "-p", "lotus-musig2-cli"]),
    )?;
    let binary = super::target_dir().join("release/lotus-musig2");
    let mut rows = Vec::new();
    let mut curve = Vec::new();
    let mut discovery = Vec::new();
    for &(n, runs) in CURVE {
        let (mut after, mut joined, mut base) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = demo(&binary, n)?;
            after.push(t.0);
            joined.push(t.1);
            base.push(t.2);
        }
        let (ms, in_process) = (super::median(after), super::median(base));
        let ratio = ms / in_process;
        let row = json!({"op": "p2p_session", "n": n, "ms": round(ms), "in_process_ms": round(in_process), "ratio": round(ratio), "runs": runs});
        println!("{row}");
        rows.push(row);
        curve.push((n as f64, ms));
        if DISCOVERY.contains(&n) {
            discovery.push((n, super::median(joined), runs));
        }
    }
    let growth = json!({"op": "p2p_session_growth", "exponent": round(exponent(&curve)), "over_n": CURVE.iter().map(|c| c.0).collect::<Vec<_>>()});
    println!("{growth}");
    rows.push(growth);
    for (n, ms, runs) in discovery {
        let row = json!({"op": "discovery_join", "n": n, "ms": round(ms), "runs": runs});
        println!("{row}");
        rows.push(row);
    }
    let mut failed = 0;
    for row in load::run(&binary)? {
        println!("{row}");
        failed += row["errors"].as_u64().unwrap_or(0);
        rows.push(row);
    }
    super::replace_table("bench-scale", &table(&rows))?;
    if failed > 0 {
        bail!("{failed} of the concurrent sessions did not complete (see the logs above)");
    }
    Ok(())
}

/// One `demo` run: (after discovery, announce + join, in-process) in ms.
pub(crate) fn demo(binary: &Path, n: usize) -> Result<(f64, f64, f64)> {
    let out = Command::new(binary)
        .args(["demo", "--signers", &n.to_string(), "--json"])
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "demo with {n} signers failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let t = &v["timings_ms"];
    let get = |k: &str| t[k].as_f64().with_context(|| format!("demo: no {k}"));
    Ok((
        get("after_discovery")?,
        get("announce_join")?,
        get("in_process_session")?,
    ))
}

/// Least-squares slope of ln(ms) over ln(n).
fn exponent(points: &[(f64, f64)]) -> f64 {
    let logs: Vec<(f64, f64)> = points.iter().map(|(n, ms)| (n.ln(), ms.ln())).collect();
    let len = logs.len() as f64;
    let (mx, my) = (
        logs.iter().map(|p| p.0).sum::<f64>() / len,
        logs.iter().map(|p| p.1).sum::<f64>() / len,
    );
    let num: f64 = logs.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = logs.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    num / den
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn table(rows: &[Value]) -> String {
    let mut out = String::from("| measurement | figure |\n| --- | --- |\n");
    for r in rows {
        let line = match r["op"].as_str().unwrap_or_default() {
            "p2p_session" => format!(
                "| session after discovery, n = {} | {} ms (in-process {} ms, ratio {}×; {} runs) |",
                r["n"], r["ms"], r["in_process_ms"], r["ratio"], r["runs"]
            ),
            "p2p_session_growth" => {
                format!("| growth exponent k (ms ≈ c·nᵏ) | {} |", r["exponent"])
            }
            "discovery_join" => format!(
                "| discovery + join, {} nodes | {} ms ({} runs) |",
                r["n"], r["ms"], r["runs"]
            ),
            "concurrent_sessions" => format!(
                "| {} concurrent 3-of-3 sessions on {} nodes | {} completed, {} errors, {} ms ({} sessions/s); {} B per live session (peak {} live) |",
                r["sessions"],
                r["nodes"],
                r["completed"],
                r["errors"],
                r["ms"],
                r["sessions_per_second"],
                r["bytes_per_session"],
                r["peak_live"]
            ),
            "idle_rss" => format!("| idle node RSS | {} MiB |", r["mib"]),
            _ => continue,
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_growth_exponent_of_a_power_law() {
        let square: Vec<(f64, f64)> = [2.0, 5.0, 10.0, 50.0]
            .iter()
            .map(|n| (*n, 3.0 * n * n))
            .collect();
        assert!((exponent(&square) - 2.0).abs() < 1e-9);
        let linear: Vec<(f64, f64)> = [2.0, 20.0].iter().map(|n| (*n, 7.0 * n)).collect();
        assert!((exponent(&linear) - 1.0).abs() < 1e-9);
    }
}
