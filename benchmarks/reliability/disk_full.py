"""Reliability claim 3 (issue 16): ingestion and training into a data home on a small tmpfs that fills up — a clear
"filled up" error in one line, nothing half-written read back (store, manifest, checkpoint, registry), and the next
run after space is freed completes with exactly what a run that never hit a full disk makes.

    sudo .venv/bin/python benchmarks/reliability/disk_full.py     (mounts tmpfs: needs root)

Ingest: the real CLI (bundled embedder) into tmpfs homes of several sizes, so the disk fills at different stages;
then the tmpfs is grown (`mount -o remount,size=`) and the same ingest run again; each store is compared with one
ingested on a roomy disk. Training: the real CLI (SmolLM2, fp32, a checkpoint every 5 steps) likewise, then
`--resume`; the adapter is compared with an uninterrupted run's. Prints Markdown tables for docs/RELIABILITY.md.
"""

from __future__ import annotations

import datetime
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

from benchmarks.reliability.kill_ingest import write_corpus  # noqa: E402
from tests.trained import FACTS, write  # noqa: E402

ASSISTANT = str(Path(sys.executable).with_name("assistant"))
CHECK = [sys.executable, str(ROOT / "benchmarks" / "reliability" / "kb_child.py"), "check"]
GUARD_S = 1800
INGEST_SIZES_MB = (3, 5, 7, 9, 12)
TRAIN_SIZES_MB = (4, 8, 12)
TRAIN = ["--epochs", "10", "--batch-size", "2", "--max-length", "96", "--val-fraction", "0", "--checkpoint-every",
         "5", "--seed", "3", "--warmup-ratio", "0"]


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=60)


def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Exit code and the last line of stderr."""
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=GUARD_S)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return done.returncode, (lines[-1] if lines else "")


def one_line_error(code: int, message: str) -> bool:
    return code != 0 and message.startswith("error: The disk holding") and "filled up" in message


def state(env: dict[str, str]) -> dict:
    done = subprocess.run(CHECK, env=env, capture_output=True, text=True, timeout=GUARD_S)
    return json.loads(done.stdout) if done.returncode == 0 else {"unreadable": done.stderr.strip()[-200:]}


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    return {**env, "ASSISTANT_HOME": str(home), "ASSISTANT_LOCAL_PRECISION": "fp32", "PYTHONPATH": str(ROOT)}


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("disk_full.py mounts small tmpfs filesystems: run it as root.")
    started = time.perf_counter()
    ingest_rows, train_rows = [], []
    with tempfile.TemporaryDirectory(prefix="disk-full-") as scratch:
        work = Path(scratch)
        corpus = work / "corpus"
        corpus.mkdir()
        rng = random.Random(16)
        write_corpus(corpus, 400, rng, digits=3)
        roomy = work / "roomy"
        code, message = run([ASSISTANT, "ingest", str(corpus)], env_for(roomy))
        assert code == 0, message
        reference = state(env_for(roomy))["documents"]
        mount = work / "mnt"
        mount.mkdir()
        for size in INGEST_SIZES_MB:
            sh("mount", "-t", "tmpfs", "-o", f"size={size}m", "tmpfs", str(mount))
            try:
                env = env_for(mount / "home")
                code, message = run([ASSISTANT, "ingest", str(corpus)], env)
                while_full = state(env)
                sh("mount", "-o", "remount,size=96m", str(mount))
                again, again_message = run([ASSISTANT, "ingest", str(corpus)], env)
                after = state(env)
                ingest_rows.append((size, one_line_error(code, message), message,
                                    len(while_full.get("documents") or {}), again, after.get("documents") == reference
                                    and not after["not_done"], again_message))
            finally:
                sh("umount", str(mount))
            print(f"ingest {size} MB: exit {code}, again {again}", file=sys.stderr)

        data = write(work / "facts.jsonl", FACTS)
        code, message = run([ASSISTANT, "finetune", "train", str(data), "--name", "whole", *TRAIN], env_for(roomy))
        assert code == 0, message
        whole = (roomy / "finetuned" / "whole" / "adapter" / "adapter_model.safetensors").read_bytes()
        for size in TRAIN_SIZES_MB:
            sh("mount", "-t", "tmpfs", "-o", f"size={size}m", "tmpfs", str(mount))
            try:
                home = mount / "home"
                home.mkdir()
                (home / "models").symlink_to(roomy / "models")  # the dequantised base model: 540 MB, not the point
                env = env_for(home)
                code, message = run([ASSISTANT, "finetune", "train", str(data), "--name", "full", *TRAIN], env)
                listed, _ = run([ASSISTANT, "finetune", "list"], env)
                leftovers = sorted(p.name for p in (home / "finetuned" / "full").rglob("*")
                                   if p.name.startswith(".model-") or p.name.endswith(".staging"))
                sh("mount", "-o", "remount,size=96m", str(mount))
                again, again_message = run([ASSISTANT, "finetune", "train", str(data), "--name", "full", *TRAIN,
                                            "--resume"], env)
                adapter = home / "finetuned" / "full" / "adapter" / "adapter_model.safetensors"
                same = adapter.is_file() and adapter.read_bytes() == whole
                train_rows.append((size, one_line_error(code, message), message, listed == 0, leftovers, again,
                                   same, again_message))
            finally:
                sh("umount", str(mount))
            print(f"train {size} MB: exit {code}, again {again}", file=sys.stderr)
    seconds = time.perf_counter() - started

    print(f"\n{datetime.date.today()}, disk_full.py, 400 files ({len(reference)} documents), {seconds:.0f} s\n")
    print("| tmpfs | ingest: one-line \"filled up\" error | documents readable while full | after growing it: "
          "ingest again | store = a roomy run's, manifest all done |")
    print("|---|---|---|---|---|")
    for size, clear, message, readable, again, equal, _ in ingest_rows:
        print(f"| {size} MiB | {'yes' if clear else f'**no**: {message[:80]}'} | {readable} | exit {again} | "
              f"{'yes' if equal else '**no**'} |")
    print("\n| tmpfs | training: one-line \"filled up\" error | registry readable | temp files or staging left | "
          "`--resume` after growing it | adapter = an uninterrupted run's (bytes) |")
    print("|---|---|---|---|---|---|")
    for size, clear, message, listed, leftovers, again, same, _ in train_rows:
        print(f"| {size} MiB | {'yes' if clear else f'**no**: {message[:80]}'} | {'yes' if listed else '**no**'} | "
              f"{', '.join(leftovers) or 'none'} | exit {again} | {'yes' if same else '**no**'} |")
    bad = [r for r in ingest_rows if not (r[1] and r[4] == 0 and r[5])] + \
          [r for r in train_rows if not (r[1] and r[3] and not r[4] and r[5] == 0 and r[6])]
    for row in bad:
        print(f"problem: {row}", file=sys.stderr)
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
