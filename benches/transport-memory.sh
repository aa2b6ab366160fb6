#!/usr/bin/env bash
# Peak resident memory of pack-objects and unpack-objects on a repository
# holding one large object (issue 14: under 64 MiB for 1 GiB).
#
# Builds the release binary, makes a repository whose one commit holds a
# SIZE_MIB file of random bytes (plus a small and an empty file), packs the
# commit to a bundle file, unpacks that bundle into a fresh repository, and
# prints the peak RSS of each step (GNU time's "Maximum resident set size").
# The receiver's object must verify and hash like the source file. Exits 1
# when a peak is at or over LIMIT_MIB, 2 when a tool or a check fails. A
# benchmark script, not a cargo test: it needs about 3 x SIZE_MIB of disk.
#
# Usage: benches/transport-memory.sh            (1024 MiB object, 64 MiB limit)
#        SIZE_MIB=256 LIMIT_MIB=64 benches/transport-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
LIMIT_MIB=${LIMIT_MIB:-64}

if ! /usr/bin/time -v true >/dev/null 2>&1; then
    echo "GNU time is needed at /usr/bin/time: apt-get install -y time" >&2
    exit 2
fi

cargo build --release --quiet --bin muse
muse="$PWD/target/release/muse"

mkdir -p target/tmp
work=$(mktemp -d "$PWD/target/tmp/transport-memory.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

"$muse" init "$work/src" >/dev/null
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$work/src/big.bin"
echo small >"$work/src/small.txt"
: >"$work/src/empty"
(cd "$work/src" && "$muse" commit -m big >/dev/null)
expected=$(sha256sum "$work/src/big.bin" | cut -d' ' -f1)

peak() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }

cd "$work/src"
/usr/bin/time -v -o "$work/pack.txt" "$muse" plumbing pack-objects HEAD >"$work/bundle.msgpack"
pack_kib=$(peak "$work/pack.txt")

"$muse" init "$work/dst" >/dev/null
cd "$work/dst"
/usr/bin/time -v -o "$work/unpack.txt" "$muse" plumbing unpack-objects <"$work/bundle.msgpack" >"$work/out.json"
unpack_kib=$(peak "$work/unpack.txt")
grep -q '"objects_written": 3' "$work/out.json" || { echo "unpack: $(cat "$work/out.json")" >&2; exit 2; }
"$muse" plumbing verify-object -q "$expected" || { echo "the received object does not verify" >&2; exit 2; }
[ -z "$(ls -A .muse/quarantine 2>/dev/null)" ] || { echo "quarantine left behind" >&2; exit 2; }

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
echo "pack-objects of a ${SIZE_MIB} MiB object: peak RSS ${pack_kib} KiB ($(mib "$pack_kib") MiB)"
echo "unpack-objects of it: peak RSS ${unpack_kib} KiB ($(mib "$unpack_kib") MiB), limit ${LIMIT_MIB} MiB"
for k in "$pack_kib" "$unpack_kib"; do
    if [ "$k" -ge "$((LIMIT_MIB * 1024))" ]; then
        echo "FAIL: peak RSS is over the limit" >&2
        exit 1
    fi
done
echo "ok"
