#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for a short, fixed time.
# Exits non-zero when a target fails to build or finds a crash (the crash
# input is left in fuzz/artifacts/<target>/). FUZZ_SECONDS overrides the
# time per target (default 20).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# cargo-fuzz needs nightly-only flags (sanitizers); this stable toolchain
# accepts them with RUSTC_BOOTSTRAP=1.
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-20}"
# A fixed seed makes a CI run repeat the same search, so a crash it finds
# can be reproduced here; longer runs with other seeds are in docs/testing.md.
cargo fuzz build
for target in $(cargo fuzz list); do
    echo "fuzz: ${target} for ${seconds}s"
    mkdir -p "corpus/${target}"
    extra=()
    # The model target needs operation sequences longer than libFuzzer's
    # default growth allows in a short run.
    [ "${target}" = store_model ] && extra=(-max_len=256 -len_control=0)
    # Seed inputs committed beside the targets (fuzz/seeds/<target>/), when
    # a target has them, join the corpus read at start.
    seeds=()
    [ -d "seeds/${target}" ] && seeds=("seeds/${target}")
    cargo fuzz run "${target}" "corpus/${target}" "${seeds[@]}" -- \
        -seed=1 -max_total_time="${seconds}" -rss_limit_mb=2048 -timeout=10 "${extra[@]}"
done
