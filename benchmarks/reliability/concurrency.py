"""Reliability claim 5 (issue 16): writers and readers at once lose and duplicate nothing and never hang — two
ingests and a reader on one embedded store (the second writer waits for the lock, at most the documented 10 s,
then is told to retry or to use a server), four ingests at once against a Chroma server (none waits), and two
trainings of different names at once.

    .venv/bin/python benchmarks/reliability/concurrency.py [--files 60]

Ingests are benchmarks/reliability/kb_child.py (the real pipeline, the tests' hashing embedder, 4 chunks a write);
the reader is the same child reading every chunk back, in a loop while the writers run; the server is a real
`chroma run` on 127.0.0.1. Trainings are the real CLI on the bundled SmolLM2. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.reliability.claims import report  # noqa: E402
from benchmarks.reliability.kill_ingest import write_corpus  # noqa: E402
from tests.chroma_server import start_chroma  # noqa: E402
from tests.trained import FACTS, write  # noqa: E402

CHILD = [sys.executable, str(ROOT / "benchmarks" / "reliability" / "kb_child.py")]
ASSISTANT = str(Path(sys.executable).with_name("assistant"))
GUARD_S = 1800
WAIT_S = 10  # ingest/store.py WRITER_WAIT_SECONDS: what the refusal message promises


def folders(root: Path, count: int, files: int, rng: random.Random) -> list[Path]:
    made = []
    for f in range(count):
        folder = root / f"part{f}"
        folder.mkdir(parents=True)
        write_corpus(folder, files, rng, prefix=f"p{f}-", digits=3)
        made.append(folder)
    return made


def expected(settings_env: dict[str, str], parts: list[Path]) -> dict[str, list[str]]:
    """doc_id → sorted chunk ids: what the folders chunk into (each document's id is relative to its folder)."""
    os.environ["ASSISTANT_HOME"] = settings_env["ASSISTANT_HOME"]
    from assistant.config import load_settings
    from tests.test_ingest_pipeline import expected as chunks_of

    settings = load_settings(chunk_size=40, chunk_overlap=8)
    return {doc: sorted(ids) for part in parts for doc, ids in chunks_of(settings, part).items()}


def stored(env: dict[str, str]) -> dict:
    done = subprocess.run([*CHILD, "check"], env=env, capture_output=True, text=True, timeout=GUARD_S)
    return json.loads(done.stdout) if done.returncode == 0 else {"unreadable": done.stderr[-300:]}


def ingest_all(parts: list[Path], env: dict[str, str]) -> list[tuple[int, float, str]]:
    """Start one ingest per folder at once, read the store in a loop meanwhile; (exit, seconds, last line)."""
    started = time.perf_counter()
    children = [subprocess.Popen([*CHILD, "ingest", str(part)], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True) for part in parts]
    reads = read_failures = 0
    while any(child.poll() is None for child in children):
        state = stored(env)
        reads += 1
        read_failures += "unreadable" in state or "damaged" in state
    results = []
    for child in children:
        _, err = child.communicate(timeout=GUARD_S)
        lines = [line for line in err.splitlines() if line.strip()]
        results.append((child.returncode, time.perf_counter() - started, lines[-1] if lines else ""))
    results.append((read_failures, reads, "reads"))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=60)
    args = parser.parse_args()
    rng = random.Random(16)
    rows: list[tuple[str, str, bool]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="concurrency-") as scratch:
        work = Path(scratch)
        base = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}

        # Embedded: two writers and a reader.
        env = {**base, "ASSISTANT_HOME": str(work / "embedded"), "PYTHONPATH": str(ROOT)}
        parts = folders(work / "embedded-docs", 2, args.files, rng)
        *writers, (read_failures, reads, _) = ingest_all(parts, env)
        refused = [w for w in writers if w[0] != 0]
        prompt = all("Another process is writing" in line and seconds < WAIT_S + 60 for _, seconds, line in refused)
        for part, (code, _, _) in zip(parts, writers):
            if code:  # told to retry: retried, as the message says
                subprocess.run([*CHILD, "ingest", str(part)], env=env, capture_output=True, timeout=GUARD_S,
                               check=True)
        want = expected(env, parts)
        have = stored(env)
        rows.append(("embedded store: 2 ingests at once", f"{len(writers) - len(refused)} ran, {len(refused)} told "
                     f"another process was writing (after ≤ {WAIT_S} s of waiting) and retried", prompt))
        rows.append(("embedded store: reads of every chunk while they wrote", f"{reads} reads, {read_failures} "
                     "failed", read_failures == 0))
        rows.append(("embedded store: afterwards, chunks = both folders' (none lost, none twice)",
                     f"{sum(map(len, want.values()))} expected, {sum(map(len, (have.get('documents') or {}).values()))}"
                     f" stored", have.get("documents") == want and not have.get("not_done")))

        # A Chroma server: four writers, nobody waits.
        server, url = start_chroma(work / "chroma-server")
        try:
            env = {**base, "ASSISTANT_HOME": str(work / "served"), "ASSISTANT_CHROMA_URL": url,
                   "PYTHONPATH": str(ROOT)}
            parts = folders(work / "served-docs", 4, args.files // 2, rng)
            *writers, (read_failures, reads, _) = ingest_all(parts, env)
            want = expected(env, parts)
            have = stored(env)
        finally:
            server.terminate()
            server.wait(60)
        rows.append(("Chroma server: 4 ingests at once", ", ".join(f"exit {code} in {seconds:.0f} s"
                                                                    for code, seconds, _ in writers),
                     all(code == 0 for code, _, _ in writers)))
        rows.append(("Chroma server: reads while they wrote", f"{reads} reads, {read_failures} failed",
                     read_failures == 0))
        rows.append(("Chroma server: afterwards, chunks = the four folders'",
                     f"{sum(map(len, want.values()))} expected, {sum(map(len, (have.get('documents') or {}).values()))}"
                     f" stored", have.get("documents") == want and not have.get("not_done")))

        # Two trainings of different names at once.
        env = {**base, "ASSISTANT_HOME": str(work / "training"), "ASSISTANT_LOCAL_PRECISION": "fp32"}
        data = write(work / "facts.jsonl", FACTS)
        options = ["--epochs", "5", "--batch-size", "2", "--max-length", "96", "--val-fraction", "0"]
        subprocess.run([ASSISTANT, "finetune", "list"], env=env, capture_output=True, timeout=GUARD_S)
        trainings = [subprocess.Popen([ASSISTANT, "finetune", "train", str(data), "--name", name, *options], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                     for name in ("first", "second")]
        codes = [t.wait(GUARD_S) for t in trainings]
        listed = subprocess.run([ASSISTANT, "finetune", "list", "--json"], env=env, capture_output=True, text=True,
                                timeout=GUARD_S)
        statuses = {m["name"]: m["status"] for m in json.loads(listed.stdout)} if listed.returncode == 0 else {}
        rows.append(("two trainings of different names at once", f"exits {codes}, records {statuses}",
                     codes == [0, 0] and statuses == {"first": "succeeded", "second": "succeeded"}))
    seconds = time.perf_counter() - started

    report(f"concurrency.py --files {args.files}", seconds, rows)


if __name__ == "__main__":
    main()
