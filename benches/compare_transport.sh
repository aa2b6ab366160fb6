#!/usr/bin/env bash
# Side-by-side benchmark of muse's transport against git's (SHA-256
# repositories, issue 14): clone, fetch and push between local repositories,
# durable and verifying on both sides. Builds the release binary, generates
# the repositories in a scratch directory on the same filesystem as the
# build, and prints one table of medians and ratios measured in this one run.
#
#   benches/compare_transport.sh            # full run (10,000 files, 100 commits)
#   QUICK=1 benches/compare_transport.sh    # 1,000 files, 10 commits, for a smoke test
#   RUNS=5 benches/compare_transport.sh
#   MUSE=/path/to/muse benches/compare_transport.sh   # that binary (still builds)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
export MUSE="${MUSE:-${CARGO_TARGET_DIR:-$PWD/target}/release/muse}"
exec python3 benches/compare_transport.py "$@"
