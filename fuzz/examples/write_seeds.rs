//! Writes the seed corpus (`fuzz/seeds/<target>/<name>`) from the project's
//! own encoders; run by `cargo xtask fuzz-seeds`. Replaces each target's
//! seed directory, so a seed that is no longer produced disappears.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds"));
    let seeds = lotus_musig2_fuzz::seeds::all()?;
    let mut targets: Vec<&str> = seeds.iter().map(|s| s.target).collect();
    targets.sort_unstable();
    targets.dedup();
    for target in targets {
        let dir = root.join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
    }
    for seed in &seeds {
        std::fs::write(root.join(seed.target).join(&seed.name), &seed.bytes)?;
    }
    println!("{} seeds written under {}", seeds.len(), root.display());
    Ok(())
}
