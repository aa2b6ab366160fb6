#!/usr/bin/env bash
# Checks what the cargo features promise (see src/lib.rs, "Cargo features"):
# 1. the library builds without the CLI, and its dependency tree then has
#    neither clap nor indicatif;
# 2. a default release build contains no failpoints: the built binary,
#    run with MUSE_CRASH_AT and MUSE_TEST_BARRIER naming every crash point
#    and barrier of the code, behaves normally (no abort, no wait).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --lib --no-default-features
deps=$(cargo tree --no-default-features --edges normal --prefix none --format '{p}')
if printf '%s\n' "$deps" | grep -E '^(clap|indicatif) ' ; then
    echo "features: the library without default features still depends on the crates above" >&2
    exit 1
fi
echo "features: --no-default-features builds, without clap and indicatif"

cargo build --release --bin muse
bin=target/release/muse
points=$(grep -rhoE '(crash_point|barrier)\("[a-z0-9-]+"\)' src | sed -E 's/.*\("([^"]+)"\)/\1/' | sort -u)
[ -n "$points" ] || { echo "features: found no failpoints in src/ (the pattern is stale)" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for point in $points; do
    repo="$scratch/$point"
    mkdir -p "$repo" "$scratch/barrier-$point"
    export MUSE_CRASH_AT="$point"
    # A barrier that were compiled in would wait 30 s for 99 processes.
    export MUSE_TEST_BARRIER="$point:$scratch/barrier-$point:99"
    start=$(date +%s)
    "$bin" -C "$repo" init >/dev/null
    echo one > "$repo/a.txt"
    "$bin" -C "$repo" commit -m one >/dev/null
    id=$("$bin" -C "$repo" plumbing rev-parse -f text HEAD)
    printf 'create b %s\ncreate c %s\n' "$id" "$id" | "$bin" -C "$repo" plumbing update-ref --stdin >/dev/null
    "$bin" -C "$repo" plumbing update-ref main "$id" --old-value "$id" >/dev/null
    elapsed=$(( $(date +%s) - start ))
    if [ "$elapsed" -ge 20 ]; then
        echo "features: with $point set the default binary waited ${elapsed}s" >&2
        exit 1
    fi
    if [ -n "$(ls -A "$scratch/barrier-$point")" ]; then
        echo "features: the default binary reached the barrier $point" >&2
        exit 1
    fi
done
unset MUSE_CRASH_AT MUSE_TEST_BARRIER
echo "features: the default release binary ignores MUSE_CRASH_AT and MUSE_TEST_BARRIER for: $(echo $points)"
