"""Kill an ingest with SIGKILL at random moments, change files in between, then check the next run repairs all."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from assistant.config import load_settings
from ingest.store import KnowledgeStore
from tests.fakes import HashingEmbedder
from tests.limits import HANG_GUARD_S
from tests.test_ingest_pipeline import expected, stored

REPO = Path(__file__).resolve().parents[1]


def make_corpus(root: Path, rng: random.Random, files: int = 40) -> None:
    words = "router switch packet modem fibre wireless channel band guest firmware reset port cable light".split()
    root.mkdir(exist_ok=True)
    for index in range(files):
        sentences = [" ".join(rng.choices(words, k=rng.randint(5, 14))).capitalize() + "." for _ in range(30)]
        (root / f"doc{index:03d}.md").write_text(f"# Document {index}\n" + " ".join(sentences))


def start_ingest(root: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "tests.slow_ingest", str(root)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, text=True)


def kill_while_writing(process: subprocess.Popen, rng: random.Random) -> None:
    """SIGKILL after a random number of embedding calls plus a random fraction of one write step."""
    for _ in range(rng.randint(1, 25)):
        if not process.stdout.readline().startswith("embedding"):
            break  # it finished first
    time.sleep(rng.uniform(0, 0.06))
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_killed_ingests_are_repaired_by_the_next_run(tmp_path: Path, isolated_environment: Path) -> None:
    rng = random.Random(20261121)
    root = tmp_path / "kb"
    make_corpus(root, rng)
    for round_ in range(5):
        kill_while_writing(start_ingest(root), rng)
        # Between crashes the user edits, adds and deletes files.
        victim = rng.choice(sorted(root.glob("*.md")))
        victim.write_text(victim.read_text() + f"\nEdited in round {round_}.")
        (root / f"new{round_}.md").write_text(f"# New {round_}\nA new page about guest networks, round {round_}.")
        rng.choice(sorted(root.glob("doc*.md"))).unlink()

    final = start_ingest(root)
    output, _ = final.communicate(timeout=HANG_GUARD_S)
    assert final.returncode == 0 and "finished" in output, output

    settings = load_settings(chunk_size=40, chunk_overlap=8)
    # Exactly the current files' chunks: nothing missing, no leftovers of old versions, no deleted files.
    assert stored(settings) == expected(settings, root)
    store = KnowledgeStore(settings)
    with store.manifest(settings.collection) as manifest:
        entries = manifest.entries()
    assert all(entry.done for entry in entries)
    assert {entry.doc_id for entry in entries} == set(expected(settings, root))
    collection = store.get(settings.collection)
    assert collection.count() == sum(len(ids) for ids in stored(settings).values())  # no duplicates
    page = (root / "new3.md").read_text()
    hits = collection.query(HashingEmbedder().embed([page])[0], k=1)
    assert hits[0].metadata["doc_id"] == "new3.md" and hits[0].score > 0.99
