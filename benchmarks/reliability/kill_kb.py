"""Reliability claim 1, second half (issue 16): `kb reindex` and `kb remove` SIGKILLed at random moments lose
nothing — after each kill the knowledge base is whole (or says how to finish), and one clean run finishes the work.

    .venv/bin/python benchmarks/reliability/kill_kb.py [--files 200] [--kills 10] [--seed 16]

A knowledge base of mixed files (as kill_ingest.py makes them) is ingested into the embedded store; then `kb
reindex` (the hashing embedder of the tests, announcing each call) is killed `--kills` times at a moment drawn
uniformly over a clean reindex's duration, then run clean; then `kb remove` of a random document, likewise, each
kill followed by a clean removal of the same document; then one ingest, which brings the removed files back. Each
check runs in a fresh process (benchmarks/reliability/kb_child.py). A vector index left damaged by a kill is repaired
with `kb reindex`, the repair its error names, and counted. Prints a Markdown table for docs/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.reliability.kill_ingest import write_corpus  # noqa: E402

CHILD = [sys.executable, str(ROOT / "benchmarks" / "reliability" / "kb_child.py")]
GUARD_S = 900


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*CHILD, *args], env=env, capture_output=True, text=True, timeout=GUARD_S)


def check(env: dict[str, str]) -> dict:
    done = run("check", env=env)
    if done.returncode:
        raise SystemExit(f"check failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def timed(args: list[str], env: dict[str, str]) -> float:
    """Seconds from "start" to the end of one clean run."""
    child = subprocess.Popen([*CHILD, *args], env=env, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "start"
    started = time.perf_counter()
    child.communicate(timeout=GUARD_S)
    if child.returncode:
        raise SystemExit(f"{' '.join(args)} failed with exit {child.returncode}")
    return time.perf_counter() - started


def kill_at_random(args: list[str], env: dict[str, str], duration: float, rng: random.Random) -> bool:
    """SIGKILL after "start" plus a moment uniform over `duration`; False when the run finished first."""
    child = subprocess.Popen([*CHILD, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if child.stdout.readline().strip() != "start":
        child.wait()
        return False
    time.sleep(rng.uniform(0, duration))
    finished = child.poll() is not None
    child.send_signal(signal.SIGKILL)
    child.wait()
    return not finished


def whole(state: dict, reference: dict[str, list[str]], name: str) -> str:
    """'' when the knowledge base reads back as `reference`, else what is wrong."""
    if "damaged" in state or "unreadable" in state:
        return state.get("damaged") or state["unreadable"]
    if name not in state["names"]:
        return "knowledge base missing"
    return "" if state["documents"] == reference else "chunks differ"


class Tally:
    def __init__(self) -> None:
        self.kills = self.repairs = self.finished_by_rerun = 0
        self.problems: list[str] = []

    def after_kill(self, state: dict, acceptable: list[dict[str, list[str]]], name: str, env: dict[str, str]) -> None:
        """A state the next clean run can finish from: one of `acceptable`, or a damaged index (repaired here)."""
        if "damaged" in state:
            self.repairs += 1
            repaired = run("reindex", env=env)
            if repaired.returncode:
                self.problems.append(f"repair failed: {repaired.stderr[-300:]}")
            state = check(env)
        if name not in state["names"] and f"{name}-reindexing" in state["names"]:
            self.finished_by_rerun += 1  # killed between the delete and the rename: the next reindex finishes it
            return
        if not any(whole(state, reference, name) == "" for reference in acceptable):
            self.problems.append(whole(state, acceptable[0], name) or "neither before nor after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kill-kb-") as folder:
        root, home = Path(folder) / "kb", Path(folder) / "home"
        root.mkdir()
        write_corpus(root, args.files, rng)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
        env.update(ASSISTANT_HOME=str(home), PYTHONPATH=str(ROOT))
        subprocess.run([sys.executable, "-m", "tests.slow_ingest", str(root)], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=GUARD_S)
        name = "knowledge"
        reference = check(env)["documents"]
        chunks = sum(map(len, reference.values()))

        reindex = Tally()
        duration = timed(["reindex"], env)
        for round_ in range(args.kills):
            reindex.kills += kill_at_random(["reindex"], env, duration, rng)
            reindex.after_kill(check(env), [reference], name, env)
            print(f"reindex round {round_}: {reindex.kills} kills", file=sys.stderr)
        final_reindex = run("reindex", env=env)
        after_reindex = check(env)
        reindex_lost = whole(after_reindex, reference, name) or (
            "staging copy left" if after_reindex["names"] != [name] else "")

        remove = Tally()
        timed_victim, *victims = rng.sample(sorted(reference), args.kills + 1)
        duration = timed(["remove", timed_victim], env)
        expected_now = {d: ids for d, ids in reference.items() if d != timed_victim}
        for round_, victim in enumerate(victims):
            without = {d: ids for d, ids in expected_now.items() if d != victim}
            remove.kills += kill_at_random(["remove", victim], env, duration, rng)
            remove.after_kill(check(env), [expected_now, without], name, env)
            if victim in (check(env).get("documents") or {}):
                rerun = run("remove", victim, env=env)
                if rerun.returncode:
                    remove.problems.append(f"re-run of the removal failed: {rerun.stderr[-300:]}")
            expected_now = without
            if problem := whole(check(env), expected_now, name):
                remove.problems.append(f"after removing {victim}: {problem}")
            print(f"remove round {round_}: {remove.kills} kills", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "tests.slow_ingest", str(root)], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=GUARD_S)
        final = check(env)
        remove_lost = whole(final, reference, name) or (
            f"{len(final['not_done'])} manifest entries not done" if final["not_done"] else "")
    seconds = time.perf_counter() - started

    print(f"\n{datetime.date.today()}, kill_kb.py --files {args.files} --kills {args.kills} --seed {args.seed}, "
          f"{len(reference)} documents, {chunks} chunks, {seconds:.0f} s\n")
    print("| check | `kb reindex` | `kb remove` |")
    print("|---|---|---|")
    print(f"| SIGKILLs at a random moment of the run | {reindex.kills} of {args.kills} | "
          f"{remove.kills} of {args.kills} |")
    print(f"| kills after which the knowledge base was not whole (before or after) | {len(reindex.problems)} | "
          f"{len(remove.problems)} |")
    print(f"| kills that left a damaged index, repaired by `kb reindex` | {reindex.repairs} | {remove.repairs} |")
    print(f"| kills between delete and rename, finished by the next reindex | {reindex.finished_by_rerun} | — |")
    print(f"| final clean run | exit {final_reindex.returncode} | ingest: removed files back |")
    print(f"| lost after the final run | {reindex_lost or 'nothing'} | {remove_lost or 'nothing'} |")
    for problem in reindex.problems + remove.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if reindex.problems or remove.problems or reindex_lost or remove_lost or final_reindex.returncode:
        sys.exit(1)


if __name__ == "__main__":
    main()
