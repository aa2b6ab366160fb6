//! Times `snapshot_tree` on a fresh tree of N files of 4 KiB (100 per
//! directory): `cargo run --release --example snapshot_bench -- 10000 [full|none]`.
use muse_store::{Durability, Options, Repository, snapshot_tree, worktree_manifest};
use std::time::Instant;

#[expect(clippy::disallowed_methods, reason = "bench builds a working tree")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let full = std::env::args().nth(2).as_deref() != Some("none");
    let dir = tempfile::tempdir()?;
    for i in 0..n {
        let sub = dir.path().join(format!("d{:03}", i / 100));
        std::fs::create_dir_all(&sub)?;
        let mut bytes = vec![0u8; 4096];
        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(sub.join(format!("f{i}.bin")), bytes)?;
    }
    let options = Options {
        durability: if full {
            Durability::Full
        } else {
            Durability::None
        },
        ..Options::default()
    };
    let repo = Repository::init_with(dir.path(), options)?;
    let t = Instant::now();
    let snap = snapshot_tree(&repo)?;
    let first = t.elapsed();
    let t = Instant::now();
    let again = snapshot_tree(&repo)?;
    let second = t.elapsed();
    let t = Instant::now();
    let m = worktree_manifest(&repo)?;
    let status = t.elapsed();
    assert_eq!(snap.snapshot_id, again.snapshot_id);
    assert_eq!(m.len(), n);
    println!(
        "{n} files, durability {}: first snapshot {first:?}, unchanged re-snapshot {second:?}, hash-only manifest {status:?}",
        if full { "Full" } else { "None" }
    );
    Ok(())
}
