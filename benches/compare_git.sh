#!/usr/bin/env bash
# Side-by-side benchmark of muse against git (SHA-256 repository), durable
# and with durability off on both sides. Builds the release binary, generates
# the workloads in a scratch directory on the same filesystem as the build,
# and prints one table of medians and ratios measured in this one run.
#
#   benches/compare_git.sh            # full run (several minutes)
#   QUICK=1 benches/compare_git.sh    # smaller workloads, for a smoke test
#   RUNS=5 COMMITS=1000 benches/compare_git.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec python3 benches/compare_git.py "$@"
