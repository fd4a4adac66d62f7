"""Reliability claim 1 (issue 16): an ingest SIGKILLed at random moments, with files edited, added and deleted
between the kills, is repaired by the next clean run — no duplicate chunk, no missing or stale document, the
manifest all done.

    .venv/bin/python benchmarks/reliability/kill_ingest.py [--files 500] [--kills 20] [--seed 16]

The corpus is Markdown, text, HTML, PDF and Word files (tests/docmaker.py). Each run is `tests/slow_ingest.py` in a
child process: the real pipeline and embedded Chroma store with the hashing embedder of the tests, writing in
batches of 4 chunks and announcing each embedding call, so a kill lands between or inside writes (after 1–60
calls plus 0–60 ms). Between kills: 20 files edited, 5 added, 5 deleted (work enough for the next kill). The
check compares the store with what the files on disk chunk into now. Prints a Markdown table for
docs/RELIABILITY.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests import docmaker  # noqa: E402

WORDS = "router switch packet modem fibre wireless channel band guest firmware reset port cable light".split()
KINDS = ["md"] * 12 + ["txt"] * 3 + ["html"] * 2 + ["pdf"] * 2 + ["docx"]
GUARD_S = 1800
EDITS, ADDITIONS, DELETIONS = 20, 5, 5  # after each kill
LOSSES = ("store unreadable", "documents missing", "documents stale or deleted but stored",
          "documents with wrong chunks", "chunks stored beyond the expected", "manifest entries not done")


def text(rng: random.Random, sentences: int = 24) -> str:
    return " ".join(" ".join(rng.choices(WORDS, k=rng.randint(5, 14))).capitalize() + "." for _ in range(sentences))


def write_file(path: Path, rng: random.Random) -> None:
    kind = path.suffix[1:]
    if kind == "pdf":
        docmaker.pdf(path, [text(rng, 12), text(rng, 12)])
    elif kind == "docx":
        docmaker.docx(path, [(1, f"Page {path.stem}"), (0, text(rng, 12)), (2, "Details"), (0, text(rng, 12))])
    elif kind == "html":
        path.write_text(f"<html><body><h1>{path.stem}</h1><p>{text(rng)}</p></body></html>")
    else:
        path.write_text(f"# {path.stem}\n{text(rng)}" if kind == "md" else text(rng))


def write_corpus(folder: Path, count: int, rng: random.Random, prefix: str = "doc", digits: int = 4) -> list[str]:
    """`count` files of mixed kinds (KINDS in turn) named PREFIX + number; returns their names."""
    names = [f"{prefix}{index:0{digits}d}.{KINDS[index % len(KINDS)]}" for index in range(count)]
    for name in names:
        write_file(folder / name, rng)
    return names


def start_ingest(root: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.slow_ingest", str(root)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def kill_while_writing(process: subprocess.Popen, rng: random.Random) -> bool:
    """SIGKILL after 1–60 embedding calls plus a fraction of a write; False when the run finished first."""
    for _ in range(rng.randint(1, 60)):
        if not process.stdout.readline().startswith("embedding"):
            process.wait()
            return False
    time.sleep(rng.uniform(0, 0.06))
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def change_files(root: Path, rng: random.Random, round_: int) -> None:
    files = sorted(p for p in root.iterdir() if p.is_file())
    for victim in rng.sample(files, EDITS):
        write_file(victim, rng)  # edited: new content, same name
    for index in range(ADDITIONS):
        write_file(root / f"new{round_}-{index}.{rng.choice(KINDS)}", rng)
    for victim in rng.sample(files, DELETIONS):
        victim.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="kill-ingest-") as folder:
        root, home = Path(folder) / "kb", Path(folder) / "home"
        root.mkdir()
        write_corpus(root, args.files, rng)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
        env.update(ASSISTANT_HOME=str(home), PYTHONPATH=str(ROOT))
        os.environ.update(ASSISTANT_HOME=str(home))  # for the checks below, in this process
        started, kills = time.perf_counter(), 0
        for round_ in range(args.kills):
            kills += kill_while_writing(start_ingest(root, env), rng)
            change_files(root, rng, round_)
            print(f"round {round_}: {kills} kills", file=sys.stderr)
        final = start_ingest(root, env)
        output, _ = final.communicate(timeout=GUARD_S)
        damaged = repair_if_damaged(env)
        if damaged == "yes":  # as a user would: the repair the error names, then the same ingest again
            final = start_ingest(root, env)
            output, _ = final.communicate(timeout=GUARD_S)
        seconds = time.perf_counter() - started
        try:
            result = {"index damaged by a kill, repaired by `kb reindex` (the repair its error names)": damaged,
                      **check(root)}
        except Exception as exc:  # noqa: BLE001  (a store that cannot be read back is the finding itself)
            result = {"store unreadable": f"{type(exc).__name__}: {str(exc)[:160]}"}
        if final.returncode or any(result.get(k) for k in LOSSES):
            kept = ROOT / "benchmarks" / ".data" / f"kill-ingest-failed-{datetime.datetime.now():%Y%m%d-%H%M%S}"
            shutil.copytree(folder, kept, symlinks=True)
            print(f"kept the failed run's files for inspection: {kept}", file=sys.stderr)
    print(f"\n{datetime.date.today()}, kill_ingest.py --files {args.files} --kills {args.kills} --seed {args.seed}, "
          f"{seconds:.0f} s\n")
    print("| check | result |")
    print("|---|---|")
    print(f"| SIGKILLs mid-ingest ({EDITS} edits, {ADDITIONS} additions, {DELETIONS} deletions after each) | "
          f"{kills} of {args.kills} runs (the others finished first) |")
    last = output.strip().splitlines()[-1:] or ["no output"]
    print(f"| final clean run{' (after the repair)' if damaged == 'yes' else ''} | exit {final.returncode}, "
          f"{last[0][:60]} |")
    for name, value in result.items():
        print(f"| {name} | {value} |")
    if final.returncode or any(result.get(k) for k in LOSSES):
        sys.exit(1)


def repair_if_damaged(env: dict[str, str]) -> str:
    """'yes' after repairing a vector index Chroma could not load, 'no' when it loaded (checked in a fresh process,
    as a user's next command would be)."""
    child = [sys.executable, str(ROOT / "benchmarks" / "reliability" / "kb_child.py")]
    state = json.loads(subprocess.run([*child, "check"], env=env, capture_output=True, text=True, check=True,
                                      timeout=GUARD_S).stdout)
    if "damaged" not in state:
        return "no"
    print(f"damaged: {state['damaged']}", file=sys.stderr)
    subprocess.run([*child, "reindex"], env=env, check=True, stdout=subprocess.DEVNULL, timeout=GUARD_S)
    return "yes"


def check(root: Path) -> dict[str, int]:
    from assistant.config import load_settings
    from ingest.store import KnowledgeStore
    from tests.test_ingest_pipeline import expected, stored

    settings = load_settings(chunk_size=40, chunk_overlap=8)  # what tests/slow_ingest.py ingests with
    want, have = expected(settings, root), stored(settings)
    store = KnowledgeStore(settings)
    collection = store.get(settings.collection)
    with store.manifest(settings.collection) as manifest:
        entries = manifest.entries()
    return {"documents on disk": len(want), "chunks expected": sum(map(len, want.values())),
            "documents missing": len(want.keys() - have.keys()),
            "documents stale or deleted but stored": len(have.keys() - want.keys()),
            "documents with wrong chunks": sum(want[d] != have[d] for d in want.keys() & have.keys()),
            # Chroma ids are unique, so a duplicate would be a chunk of an old version kept beside the new one:
            # stored chunks beyond what the files chunk into now.
            "chunks stored beyond the expected": collection.count() - sum(map(len, (want.get(d, set()) & have[d]
                                                                                    for d in have))),
            "manifest entries not done": sum(not e.done for e in entries) + len({e.doc_id for e in entries} ^
                                                                                want.keys())}


if __name__ == "__main__":
    main()
