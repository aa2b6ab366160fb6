#!/bin/sh
# muse fsck vs git fsck --full on the same 10,000 files (docs/benchmarks.md).
# Usage: cargo build --release && benches/fsck-vs-git.sh [workdir]
set -eu
MUSE=${MUSE:-$(cd "$(dirname "$0")/.." && pwd)/target/release/muse}
B=${1:-/tmp/fsckbench}
rm -rf "$B" && mkdir -p "$B/files"
python3 - "$B/files" <<'PY'
import os, random, sys
os.chdir(sys.argv[1]); random.seed(42)
for i in range(10000):
    d = f"d{i%100:02d}/e{(i//100)%10}"
    os.makedirs(d, exist_ok=True)
    size = random.randint(200, 8000)
    with open(f"{d}/f{i}.txt", "wb") as f:
        f.write(os.urandom(size // 2).hex().encode()[:size])
PY
cp -r "$B/files" "$B/muse" && cp -r "$B/files" "$B/git"
(cd "$B/muse" && MUSE_DURABILITY=none "$MUSE" init >/dev/null && MUSE_DURABILITY=none "$MUSE" commit -m x >/dev/null)
(cd "$B/git" && git init -q --object-format=sha256 && git add -A && git -c user.name=a -c user.email=a@b commit -q -m x)
hyperfine -N --warmup 3 --runs 20 --export-json "$B/fsck.json" \
  "$MUSE -C $B/muse fsck" "git -C $B/git fsck --full"
python3 -c "import json,sys; [print(r['command'], 'median %.1f ms' % (r['median']*1000)) for r in json.load(open(sys.argv[1]))['results']]" "$B/fsck.json"
