//! Every program in examples/ runs to success. The test command builds them
//! (`--all-targets`); this finds them next to the test binary.

use std::path::PathBuf;
use std::process::Command;

use crate::TestResult;

const EXAMPLES: [&str; 3] = ["commit_manifest", "cas_transaction", "verify_fsck"];

/// `target/<profile>/examples/`, from this test binary in
/// `target/<profile>/deps/`.
fn examples_dir() -> TestResult<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or("test binary has no target/<profile>/ directory")?;
    Ok(profile.join("examples"))
}

#[test]
fn every_example_runs() -> TestResult {
    let dir = examples_dir()?;
    let listed: Vec<String> =
        std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"))?
            .filter_map(|e| {
                let name = e.ok()?.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".rs").map(str::to_owned)
            })
            .collect();
    for name in &listed {
        assert!(
            EXAMPLES.contains(&name.as_str()),
            "examples/{name}.rs is not run by this test: add it to EXAMPLES"
        );
    }
    for name in EXAMPLES {
        let path = dir.join(name);
        assert!(
            path.is_file(),
            "{} is missing: run the tests with --all-targets so the examples are built",
            path.display()
        );
        let out = Command::new(&path).output()?;
        assert!(
            out.status.success(),
            "example {name} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
