"""Runs the transport workloads of benches/compare_transport.sh (issue 14)
and prints the table: clone, fetch and push between local repositories,
muse against git, durable and verifying on both sides.

- clone of a repository of FILES x 4 KiB with COMMITS commits (the first
  commits every file, each later one changes a few): `muse clone <src>
  <dst>` vs `git -c transfer.fsckObjects=true clone --no-local <src> <dst>`;
- fetch of one new commit on the source that changed 1 % of the files:
  `muse fetch` vs `git -c transfer.fsckObjects=true fetch`, in a fresh clone;
- push of the same kind of change from a fresh clone: `muse push origin
  main` vs `git push origin main` to a bare repository with
  `receive.fsckObjects=true`. muse has no bare repositories: its remote is a
  clone with `receive.denyCurrentBranch = "ignore"` in its config.toml
  (git's key, src/transport/remote.rs), so main, which is checked out there,
  takes the push the way a bare repository's does: objects and ref move,
  working tree untouched.

Each figure is the median of RUNS runs (default 3), the sides taking turns
within each run; every setup ends with `sync`, so its writeback is not
billed to the measurement. Setups run with durability off (the measured
commands do not); the page cache stays warm. MUSE names the binary (default:
$CARGO_TARGET_DIR/release/muse, else target/release/muse).
"""

import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
MUSE = os.environ.get("MUSE", os.path.join(TARGET, "release", "muse"))
QUICK = os.environ.get("QUICK") == "1"
RUNS = int(os.environ.get("RUNS", "3"))
FILES = int(os.environ.get("FILES", "1000" if QUICK else "10000"))
COMMITS = int(os.environ.get("COMMITS", "10" if QUICK else "100"))
SIZE = 4096
# Files each history commit after the first changes.
PER_COMMIT = 5
SCRATCH = os.environ.get("SCRATCH", os.path.join(TARGET, "compare-transport"))
AUTHOR = "bench"

# As benches/compare_git.py: durable is batch fsync of what git commits
# (objects, packs, refs); gc.auto=0 so no detached `git gc --auto` competes
# with the next measurement.
GIT_DURABLE = ["-c", "core.fsync=committed", "-c", "core.fsyncMethod=batch", "-c", "gc.auto=0"]
GIT_OFF = ["-c", "core.fsync=none", "-c", "core.fsyncObjectFiles=false", "-c", "gc.auto=0"]
GIT_VERIFY = ["-c", "transfer.fsckObjects=true"]
MUSE_DURABLE = {"MUSE_DURABILITY": "full", "MUSE_AUTHOR": AUTHOR}
MUSE_OFF = {"MUSE_DURABILITY": "none", "MUSE_AUTHOR": AUTHOR}


def run(cmd, cwd, env=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("GIT_AUTHOR_NAME", AUTHOR)
    full_env.setdefault("GIT_AUTHOR_EMAIL", "bench@example.com")
    full_env.setdefault("GIT_COMMITTER_NAME", AUTHOR)
    full_env.setdefault("GIT_COMMITTER_EMAIL", "bench@example.com")
    res = subprocess.run(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if res.returncode != 0:
        sys.exit(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr.decode(errors='replace')}")
    return res.stdout


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def settle():
    """Writes back what a setup left dirty (see benches/compare_git.py)."""
    subprocess.run(["sync"], check=True)


def file_path(tree, i):
    return os.path.join(tree, f"d{i // 100:04d}", f"f{i:06d}.bin")


def make_tree(path, files, size):
    os.makedirs(path, exist_ok=True)
    for i in range(files):
        p = file_path(path, i)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        block = f"0:{i}:".encode().ljust(64, b".")
        with open(p, "wb") as f:
            f.write((block * (size // len(block) + 1))[:size])


def change(tree, indices, tag):
    for i in indices:
        with open(file_path(tree, i), "r+b") as f:
            f.write(f"{tag} ".encode())


def history_change(k):
    """The files history commit k (1-based) changes: a few, spread out."""
    return sorted({(k * 7919 + j * (FILES // PER_COMMIT + 1)) % FILES for j in range(PER_COMMIT)})


def one_percent():
    return range(0, FILES, 100)


def fresh(tag):
    path = os.path.join(SCRATCH, tag)
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


class Muse:
    name = "muse"

    def init(self, tree):
        run([MUSE, "init"], tree, MUSE_OFF)

    def commit(self, tree, msg, durable=False):
        run([MUSE, "commit", "--author", AUTHOR, "-m", msg], tree, MUSE_DURABLE if durable else MUSE_OFF)

    def clone(self, src, dst, durable=False):
        run([MUSE, "clone", src, dst], os.path.dirname(dst), MUSE_DURABLE if durable else MUSE_OFF)

    def fetch(self, tree):
        run([MUSE, "fetch"], tree, MUSE_DURABLE)

    def push(self, tree):
        run([MUSE, "push", "origin", "main"], tree, MUSE_DURABLE)

    def make_remote(self, src, dst):
        """A clone that takes pushes to its checked-out main (as a bare
        repository takes them)."""
        self.clone(src, dst)
        with open(os.path.join(dst, ".muse", "config.toml"), "a") as f:
            f.write('\n[receive]\ndenyCurrentBranch = "ignore"\n')

    def tip(self, tree):
        heads = run([MUSE, "plumbing", "ls-remote", "-f", "text", tree], tree, MUSE_OFF).decode()
        return [line.split("\t")[0] for line in heads.splitlines() if line.endswith("\tmain")][0]


class Git:
    name = "git"

    def init(self, tree):
        run(["git", "init", "-q", "--object-format=sha256", "-b", "main"], tree)
        run(["git", "config", "gc.auto", "0"], tree)

    def commit(self, tree, msg, durable=False):
        flags = GIT_DURABLE if durable else GIT_OFF
        run(["git"] + flags + ["add", "-A"], tree)
        run(["git"] + flags + ["commit", "-q", "-m", msg], tree)

    def clone(self, src, dst, durable=False):
        flags = GIT_DURABLE + GIT_VERIFY if durable else GIT_OFF
        run(["git"] + flags + ["clone", "-q", "--no-local", src, dst], os.path.dirname(dst))
        run(["git", "config", "gc.auto", "0"], dst)

    def fetch(self, tree):
        run(["git"] + GIT_DURABLE + GIT_VERIFY + ["fetch", "-q"], tree)

    def push(self, tree):
        run(["git"] + GIT_DURABLE + ["push", "-q", "origin", "main"], tree)

    def make_remote(self, src, dst):
        """A bare clone. `-c` settings do not reach the receive-pack a local
        push starts (git clears them from its environment), so durability
        and verification go into the bare repository's own config."""
        run(["git"] + GIT_OFF + ["clone", "-q", "--bare", "--no-local", src, dst], os.path.dirname(dst))
        for key, value in [("receive.fsckObjects", "true"), ("core.fsync", "committed"),
                           ("core.fsyncMethod", "batch"), ("gc.auto", "0")]:
            run(["git", "config", key, value], dst)

    def tip(self, tree):
        return run(["git", "rev-parse", "main"], tree).decode().strip()


def build_source(side):
    src = fresh(f"{side.name}-src")
    make_tree(src, FILES, SIZE)
    side.init(src)
    side.commit(src, "import")
    for k in range(1, COMMITS):
        change(src, history_change(k), f"history {k}")
        side.commit(src, f"history {k}")
    return src


def interleaved(sides, setup, measure):
    times = {s.name: [] for s in sides}
    for r in range(RUNS):
        for side in sides:
            ctx = setup(side, r)
            settle()
            times[side.name].append(timed(lambda: measure(side, ctx)))
    return {k: statistics.median(v) for k, v in times.items()}


def fmt(t):
    return f"{t * 1000:.0f} ms" if t < 10 else f"{t:.1f} s"


def print_row(name, r):
    m, g = r["muse"], r["git"]
    print(f"| {name} | {fmt(m)} | {fmt(g)} | {g / m:.2f}x |", flush=True)


def main():
    if not os.access(MUSE, os.X_OK):
        sys.exit(f"no muse binary at {MUSE}: build it (benches/compare_transport.sh) or set MUSE")
    if os.path.exists(SCRATCH):
        shutil.rmtree(SCRATCH)
    os.makedirs(SCRATCH)
    sides = [Muse(), Git()]
    git_version = subprocess.run(["git", "--version"], stdout=subprocess.PIPE).stdout.decode().strip()
    label = f"{FILES:,} x 4 KiB, {COMMITS} commits"
    changed = len(one_percent())
    print(f"# muse vs {git_version} (SHA-256 repositories), transport between local repositories; "
          f"medians of {RUNS} runs, sides interleaved; warm page cache; `sync` after every setup")
    print(f"# durable: muse MUSE_DURABILITY=full (the default), git {' '.join(GIT_DURABLE)}; "
          f"verifying: muse always (quarantine), git {' '.join(GIT_VERIFY)} (clone, fetch), "
          f"receive.fsckObjects=true in the bare remote (push)")
    print("# push: git to a bare repository; muse to a clone with receive.denyCurrentBranch = \"ignore\" "
          "(main is checked out there and takes the push as a bare repository would: working tree untouched)")
    print("# ratio > 1 means muse is faster")
    print()
    print("| workload | muse | git | ratio git/muse |")
    print("|---|---|---|---|")

    sources = {side.name: build_source(side) for side in sides}
    settle()

    def clone_setup(side, r):
        return (sources[side.name], fresh(f"{side.name}-clone-{r}"))

    def clone_measure(side, ctx):
        side.clone(ctx[0], ctx[1], durable=True)

    print_row(f"clone {label}", interleaved(sides, clone_setup, clone_measure))

    def fetch_setup(side, r):
        src = sources[side.name]
        dst = fresh(f"{side.name}-fetch-{r}")
        side.clone(src, dst)
        change(src, one_percent(), f"fetch {r}")
        side.commit(src, f"fetch {r}")
        return (src, dst)

    def fetch_measure(side, ctx):
        side.fetch(ctx[1])

    fetch_result = interleaved(sides, fetch_setup, fetch_measure)
    for side in sides:
        src, dst = sources[side.name], os.path.join(SCRATCH, f"{side.name}-fetch-{RUNS - 1}")
        if side.name == "git":
            got = run(["git", "rev-parse", "origin/main"], dst).decode().strip()
        else:
            with open(os.path.join(dst, ".muse", "remotes", "origin", "main")) as f:
                got = f.read().strip()
        if got != side.tip(src):
            sys.exit(f"{side.name} fetch did not bring the source's tip")
    print_row(f"fetch 1 commit changing 1% ({changed} files) of {FILES:,}", fetch_result)

    remotes = {}
    for side in sides:
        remotes[side.name] = fresh(f"{side.name}-remote")
        side.make_remote(sources[side.name], remotes[side.name])
    settle()

    def push_setup(side, r):
        work = fresh(f"{side.name}-push-{r}")
        side.clone(remotes[side.name], work)
        change(work, one_percent(), f"push {r}")
        side.commit(work, f"push {r}")
        return work

    def push_measure(side, work):
        side.push(work)

    push_result = interleaved(sides, push_setup, push_measure)
    for side in sides:
        work = os.path.join(SCRATCH, f"{side.name}-push-{RUNS - 1}")
        if side.tip(remotes[side.name]) != side.tip(work):
            sys.exit(f"{side.name} push did not move the remote's main")
    print_row(f"push 1 commit changing 1% ({changed} files) of {FILES:,}", push_result)
    shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()
