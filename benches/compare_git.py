"""Runs the workloads of benches/compare_git.sh and prints the table.

Each measurement is the median of RUNS runs (default 3) of a fresh setup.
"cold" measurements drop the page cache first when /proc/sys/vm/drop_caches
is writable (it says so in the table when it is not).
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUSE = os.path.join(ROOT, "target", "release", "muse")
QUICK = os.environ.get("QUICK") == "1"
RUNS = int(os.environ.get("RUNS", "3"))
COMMITS = int(os.environ.get("COMMITS", "100" if QUICK else "1000"))
SCRATCH = os.environ.get("SCRATCH", os.path.join(ROOT, "target", "compare-git"))

# gc.auto=0 on both: a commit of thousands of loose objects otherwise starts
# a detached `git gc --auto`, which competes with the next measurement and
# writes into the tree the script is removing.
GIT_DURABLE = ["-c", "core.fsync=committed", "-c", "core.fsyncMethod=batch", "-c", "gc.auto=0"]
GIT_OFF = ["-c", "core.fsync=none", "-c", "core.fsyncObjectFiles=false", "-c", "gc.auto=0"]


def can_drop_caches():
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


COLD = can_drop_caches()


def drop_caches():
    if COLD:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


def run(cmd, cwd, env=None, stdin=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("GIT_AUTHOR_NAME", "bench")
    full_env.setdefault("GIT_AUTHOR_EMAIL", "bench@example.com")
    full_env.setdefault("GIT_COMMITTER_NAME", "bench")
    full_env.setdefault("GIT_COMMITTER_EMAIL", "bench@example.com")
    res = subprocess.run(cmd, cwd=cwd, env=full_env, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if res.returncode != 0:
        sys.exit(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr.decode(errors='replace')}")
    return res.stdout


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def make_tree(path, files, size, seed=0):
    os.makedirs(path, exist_ok=True)
    per_dir = 100
    for i in range(files):
        d = os.path.join(path, f"d{i // per_dir:04d}")
        os.makedirs(d, exist_ok=True)
        block = f"{seed}:{i}:".encode().ljust(64, b".")
        data = (block * (size // len(block) + 1))[:size]
        with open(os.path.join(d, f"f{i:06d}.bin"), "wb") as f:
            f.write(data)


def touch_percent(path, files, percent, seed):
    step = max(1, int(100 / percent))
    for i in range(0, files, step):
        d = os.path.join(path, f"d{i // 100:04d}")
        p = os.path.join(d, f"f{i:06d}.bin")
        with open(p, "r+b") as f:
            f.write(f"changed {seed} ".encode())


class Side:
    """One tool at one durability setting."""

    def __init__(self, name, durable):
        self.name = name
        self.durable = durable

    def env(self):
        if self.name == "muse":
            return {"MUSE_DURABILITY": "full" if self.durable else "none"}
        return {}

    def git(self, *args):
        return ["git"] + (GIT_DURABLE if self.durable else GIT_OFF) + list(args)

    def init(self, tree):
        if self.name == "muse":
            run([MUSE, "init"], tree, self.env())
        else:
            run(["git", "init", "-q", "--object-format=sha256", "-b", "main"], tree)
            run(["git", "config", "gc.auto", "0"], tree)

    def commit(self, tree, msg):
        if self.name == "muse":
            run([MUSE, "commit", "-m", msg], tree, self.env())
        else:
            run(self.git("add", "-A"), tree)
            run(self.git("commit", "-q", "-m", msg), tree)

    def checkout_all(self, tree):
        if self.name == "muse":
            run([MUSE, "checkout", "--force", "main"], tree, self.env())
        else:
            run(self.git("checkout", "-f", "-q", "HEAD", "--", "."), tree)

    def read_all(self, tree):
        if self.name == "muse":
            ids = [line.strip() for line in list_objects(tree)]
            out = run([MUSE, "plumbing", "verify-object", "-q"] + ids, tree, self.env())
            return out
        blobs = run(["git", "rev-list", "--objects", "--all"], tree).decode().split("\n")
        ids = "\n".join(line.split(" ")[0] for line in blobs if line.strip()) + "\n"
        return run(["git", "cat-file", "--batch"], tree, stdin=ids.encode())

    def status(self, tree):
        if self.name == "muse":
            run([MUSE, "status"], tree, self.env())
        else:
            run(self.git("status", "--porcelain"), tree)

    def make_empty_branch(self, tree):
        """A branch `empty` whose tree has no file; HEAD stays on main."""
        if self.name == "muse":
            run([MUSE, "branch", "empty"], tree, self.env())
            run([MUSE, "plumbing", "symbolic-ref", "HEAD", "--set", "empty"], tree, self.env())
            for entry in os.listdir(tree):
                if entry != ".muse":
                    shutil.rmtree(os.path.join(tree, entry))
            run([MUSE, "commit", "-m", "empty"], tree, self.env())
            run([MUSE, "checkout", "--force", "main"], tree, self.env())
        else:
            run(self.git("checkout", "-q", "--orphan", "empty"), tree)
            run(self.git("rm", "-rf", "-q", "."), tree)
            run(self.git("commit", "-q", "--allow-empty", "-m", "empty"), tree)
            run(self.git("checkout", "-q", "-f", "main"), tree)

    def switch(self, tree, branch):
        if self.name == "muse":
            run([MUSE, "checkout", branch], tree, self.env())
        else:
            run(self.git("checkout", "-q", branch), tree)

    def fsck(self, tree):
        if self.name == "muse":
            run([MUSE, "fsck"], tree, self.env())
        else:
            run(["git", "fsck", "--full", "--no-progress"], tree)


def list_objects(tree):
    objects = os.path.join(tree, ".muse", "objects")
    for shard in sorted(os.listdir(objects)):
        if len(shard) != 2:
            continue
        for rest in os.listdir(os.path.join(objects, shard)):
            if len(rest) == 62:
                yield shard + rest


def fresh(tag):
    path = os.path.join(SCRATCH, tag)
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def settle():
    """Writes back what a setup left dirty, so that the writeback of one
    side's no-sync setup is not billed to the measurement that follows it
    (it was: no-sync checkouts and fresh commits measured slower than durable
    ones, on both sides, because the kernel flushed the setup's pages during
    the measured command)."""
    subprocess.run(["sync"], check=True)


def median_of(setup, measure, cold=False):
    times = []
    for r in range(RUNS):
        ctx = setup(r)
        settle()
        if cold:
            drop_caches()
        times.append(timed(lambda: measure(ctx)))
    return statistics.median(times)


def interleaved(sides, setup, measure, cold):
    """Median per side, with the sides taking turns within each run, so that
    machine state (writeback, ext4's scan past recently deleted inodes after
    the previous setup's cleanup) falls on every side alike."""
    times = {(s.name, s.durable): [] for s in sides}
    for r in range(RUNS):
        for side in sides:
            ctx = setup(side)(r)
            settle()
            if cold:
                drop_caches()
            times[(side.name, side.durable)].append(timed(lambda: measure(side)(ctx)))
    return {k: statistics.median(v) for k, v in times.items()}


def workloads(files, size, label, sides):
    rows = []

    def committed_tree(side, r):
        tree = fresh(f"{side.name}-{label}-{r}")
        make_tree(tree, files, size)
        side.init(tree)
        return tree

    for measure_name, setup, measure in [
        (f"commit fresh tree {label}",
         lambda side: (lambda r: committed_tree(side, r)),
         lambda side: (lambda tree: side.commit(tree, "import"))),
        (f"re-commit after changing 1% {label}",
         lambda side: (lambda r: prep_recommit(side, committed_tree(side, r))),
         lambda side: (lambda tree: side.commit(tree, "change"))),
        (f"checkout whole tree into empty dir {label}",
         lambda side: (lambda r: prep_checkout(side, committed_tree(side, r))),
         lambda side: (lambda tree: side.checkout_all(tree))),
        (f"read every object verified {label}",
         lambda side: (lambda r: prep_commit(side, committed_tree(side, r))),
         lambda side: (lambda tree: side.read_all(tree))),
    ] + ([] if os.environ.get("SKIP_FSCK") == "1" else [
        (f"fsck {label}",
         lambda side: (lambda r: prep_commit(side, committed_tree(side, r))),
         lambda side: (lambda tree: side.fsck(tree))),
    ]):
        cold = measure_name.startswith("commit fresh tree")
        result = interleaved(sides, setup, measure, cold)
        rows.append((measure_name, result))
        print_row(measure_name, result)
    return rows


def prep_commit(side, tree):
    side.commit(tree, "import")
    return tree


def prep_recommit(side, tree):
    side.commit(tree, "import")
    touch_percent(tree, count_files(tree), 1, 1)
    return tree


def prep_checkout(side, tree):
    side.commit(tree, "import")
    for entry in os.listdir(tree):
        if entry in (".muse", ".git"):
            continue
        shutil.rmtree(os.path.join(tree, entry))
    return tree


def count_files(tree):
    n = 0
    for d, dirs, files in os.walk(tree):
        dirs[:] = [x for x in dirs if x not in (".muse", ".git")]
        n += len(files)
    return n


def status_clean(sides, files, size, label):
    def setup(side):
        def make(r):
            tree = fresh(f"{side.name}-status-{r}")
            make_tree(tree, files, size)
            side.init(tree)
            side.commit(tree, "import")
            # Warm: the first status after a commit may refresh caches.
            side.status(tree)
            return tree
        return make

    name = f"status on a clean tree {label}"
    result = interleaved(sides, setup, lambda side: (lambda tree: side.status(tree)), False)
    print_row(name, result)
    return (name, result)


def branch_switch(sides, files, size, label):
    rows = []

    def with_empty(side, r):
        tree = fresh(f"{side.name}-switch-{r}")
        make_tree(tree, files, size)
        side.init(tree)
        side.commit(tree, "import")
        side.make_empty_branch(tree)
        return tree

    def to_empty_then_back(side, r):
        tree = with_empty(side, r)
        side.switch(tree, "empty")
        return tree

    for name, setup, target in [
        (f"switch {label} -> empty branch", with_empty, "empty"),
        (f"switch empty branch -> {label}", to_empty_then_back, "main"),
    ]:
        result = interleaved(
            sides,
            lambda side, setup=setup: (lambda r: setup(side, r)),
            lambda side, target=target: (lambda tree: side.switch(tree, target)),
            False,
        )
        rows.append((name, result))
        print_row(name, result)
    return rows


def copy_floor(files, size, label):
    """The least a durable commit of the tree can cost on this disk: copy the
    files (cp -r) and make them durable (sync); and the copy alone."""
    def setup(r):
        src = fresh(f"floor-{r}")
        make_tree(os.path.join(src, "tree"), files, size)
        return src

    def copy_sync(src):
        run(["cp", "-r", os.path.join(src, "tree"), os.path.join(src, "copy")], src)
        run(["sync"], src)

    def copy_only(src):
        run(["cp", "-r", os.path.join(src, "tree"), os.path.join(src, "copy")], src)

    durable = median_of(setup, copy_sync, cold=True)
    plain = median_of(setup, copy_only, cold=True)
    return durable, plain


def sequential_commits(sides):
    result = {}
    for side in sides:
        def setup(r, side=side):
            tree = fresh(f"{side.name}-seq-{r}")
            make_tree(tree, 10, 4096)
            side.init(tree)
            side.commit(tree, "base")
            return tree

        def measure(tree, side=side):
            p = os.path.join(tree, "d0000", "f000000.bin")
            for i in range(COMMITS):
                with open(p, "wb") as f:
                    f.write(f"commit {i}\n".encode())
                side.commit(tree, f"c{i}")

        result[(side.name, side.durable)] = median_of(setup, measure)
    name = f"{COMMITS} sequential single-file commits"
    print_row(name, result)
    return (name, result)


HEADER = "| workload | muse durable | git durable | ratio git/muse | muse no-sync | git no-sync | ratio git/muse |"


def fmt(t):
    return f"{t * 1000:.0f} ms" if t < 10 else f"{t:.1f} s"


def print_row(name, r):
    md, gd = r[("muse", True)], r[("git", True)]
    mn, gn = r[("muse", False)], r[("git", False)]
    print(f"| {name} | {fmt(md)} | {fmt(gd)} | {gd / md:.2f}x | {fmt(mn)} | {fmt(gn)} | {gn / mn:.2f}x |", flush=True)


def peak_rss_commit(files, size):
    tree = fresh("rss")
    make_tree(tree, files, size)
    run([MUSE, "init"], tree)
    out = subprocess.run(["/usr/bin/time", "-f", "%M", MUSE, "commit", "-m", "big"], cwd=tree,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    kib = int(out.stderr.decode().strip().splitlines()[-1])
    shutil.rmtree(tree, ignore_errors=True)
    return kib / 1024


def ingest_per_object(files):
    def setup(r):
        tree = fresh(f"scale-{files}-{r}")
        make_tree(tree, files, 512)
        run([MUSE, "init"], tree)
        return tree

    t = median_of(setup, lambda tree: run([MUSE, "commit", "-m", "x"], tree))
    return t / files


def main():
    os.makedirs(SCRATCH, exist_ok=True)
    sides = [Side("muse", True), Side("git", True), Side("muse", False), Side("git", False)]
    small = (1000, 4096, "1,000 x 4 KiB") if QUICK else (10_000, 4096, "10,000 x 4 KiB")
    large = (10, 10 << 20, "10 x 10 MiB") if QUICK else (100, 10 << 20, "100 x 10 MiB")
    print(f"# muse vs git {subprocess.run(['git', '--version'], stdout=subprocess.PIPE).stdout.decode().strip()}"
          f" (SHA-256 repositories); medians of {RUNS} runs; page cache {'dropped before each fresh-tree commit (cold), warm otherwise' if COLD else 'never dropped (no permission): all warm'}")
    print(f"# durable: muse MUSE_DURABILITY=full, git {' '.join(GIT_DURABLE)}; no-sync: MUSE_DURABILITY=none, git {' '.join(GIT_OFF)}")
    print(f"# ratio > 1 means muse is faster")
    print()
    print(HEADER)
    print("|---|---|---|---|---|---|---|")
    small_rows = workloads(*small, sides)
    workloads(*large, sides)
    sequential_commits(sides)
    status_clean(sides, *small)
    switch = (2000, 4096, "2,000 x 4 KiB") if QUICK else (20_000, 4096, "20,000 x 4 KiB")
    branch_switch(sides, *switch)
    print()
    durable, plain = copy_floor(*small)
    fresh_commit = dict(small_rows[0][1])
    print(f"floor: `cp -r` + `sync` of the {small[2]} tree {fmt(durable)} (cold); `cp -r` alone {fmt(plain)}; "
          f"muse durable fresh commit / floor = {fresh_commit[('muse', True)] / durable:.2f} (target <= 2), "
          f"no-sync / copy = {fresh_commit[('muse', False)] / plain:.2f}")
    small_n, big_n = (1000, 10_000) if QUICK else (1000, 100_000)
    a, b = ingest_per_object(small_n), ingest_per_object(big_n)
    print(f"scaling: durable ingest per object at {small_n:,} objects {a * 1e6:.0f} us, at {big_n:,} objects {b * 1e6:.0f} us; ratio {b / a:.2f} (target <= 1.3)")
    files, size = (64, 1 << 20) if QUICK else (1024, 1 << 20)
    rss = peak_rss_commit(files, size)
    print(f"memory: peak RSS of `muse commit` on a {files * size >> 20} MiB tree: {rss:.1f} MiB (target < 128 MiB)")
    shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()
