#!/usr/bin/env bash
# Peak resident memory of `muse plumbing hash-object -w` on a large file.
#
# Builds the release binary, creates a repository and a SIZE_MIB file of
# random bytes in a temp dir, stores the file, checks the printed id against
# sha256sum, and prints the peak RSS (GNU time's "Maximum resident set size",
# i.e. the kernel's VmHWM for the process). Exits 1 when the peak is at or
# over LIMIT_MIB, 2 when the tool or the id is wrong. A benchmark script, not
# a cargo test: it needs SIZE_MIB of disk and a release build.
#
# GNU time is required (`apt-get install -y time`). A wrapper forked from a
# bigger process (python's subprocess, say) would not do: the child's
# pre-exec address space counts in ru_maxrss and inflates the figure.
#
# Usage: benches/memory.sh            (256 MiB file, 64 MiB limit)
#        SIZE_MIB=1024 LIMIT_MIB=64 benches/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-256}
LIMIT_MIB=${LIMIT_MIB:-64}

if ! /usr/bin/time -v true >/dev/null 2>&1; then
    echo "GNU time is needed at /usr/bin/time: apt-get install -y time" >&2
    exit 2
fi

cargo build --release --quiet --bin muse
muse="$PWD/target/release/muse"

# On the build's filesystem (not a tmpfs, whose pages would count elsewhere).
mkdir -p target/tmp
work=$(mktemp -d "$PWD/target/tmp/memory.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

"$muse" init "$work/repo" >/dev/null
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$work/big.bin"

cd "$work/repo"
/usr/bin/time -v -o "$work/time.txt" "$muse" plumbing hash-object -w -f text "$work/big.bin" >"$work/out.txt"
peak_kib=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")

id=$(cat "$work/out.txt")
expected=$(sha256sum "$work/big.bin" | cut -d' ' -f1)
if [ "$id" != "$expected" ]; then
    echo "hash-object printed '$id', expected '$expected'" >&2
    exit 2
fi
"$muse" plumbing verify-object -q "$id" || { echo "stored object does not verify" >&2; exit 2; }

peak_mib=$(awk -v k="$peak_kib" 'BEGIN { printf "%.1f", k / 1024 }')
echo "hash-object -w of a ${SIZE_MIB} MiB file: peak RSS ${peak_kib} KiB (${peak_mib} MiB), limit ${LIMIT_MIB} MiB"
if [ "$peak_kib" -ge "$((LIMIT_MIB * 1024))" ]; then
    echo "FAIL: peak RSS is over the limit" >&2
    exit 1
fi
echo "ok"
