//! `cargo xtask faults-proxy LISTEN TARGET DELAY_MS JITTER_MS`: a TCP proxy
//! that delays every chunk, each way, by `DELAY_MS ± JITTER_MS` (the
//! `netem` qdisc is not available in this kernel). Order is kept: a chunk
//! never leaves before the one read before it. The fault suite starts one
//! inside a host's namespace.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// Runs the proxy until killed.
pub fn run(args: &[&str]) -> Result<()> {
    let [listen, target, delay, jitter] = args else {
        anyhow::bail!("usage: cargo xtask faults-proxy LISTEN TARGET DELAY_MS JITTER_MS");
    };
    let delay: u64 = delay.parse().context("DELAY_MS")?;
    let jitter: u64 = jitter.parse().context("JITTER_MS")?;
    let listener = TcpListener::bind(listen).with_context(|| format!("bind {listen}"))?;
    for inbound in listener.incoming().flatten() {
        let Ok(outbound) = TcpStream::connect(target) else {
            continue;
        };
        for (from, to) in [
            (inbound.try_clone()?, outbound.try_clone()?),
            (outbound, inbound),
        ] {
            std::thread::spawn(move || pump(from, to, delay, jitter));
        }
    }
    Ok(())
}

/// Copies `from` to `to`, each chunk `delay ± jitter` ms late.
fn pump(mut from: TcpStream, to: TcpStream, delay: u64, jitter: u64) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        let mut to = to;
        for (due, chunk) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut rng = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut last = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let spread = if jitter == 0 {
            0
        } else {
            rng % (2 * jitter + 1)
        };
        let ms = (delay + spread).saturating_sub(jitter);
        let due = (Instant::now() + Duration::from_millis(ms)).max(last);
        last = due;
        if tx.send((due, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.join();
}
