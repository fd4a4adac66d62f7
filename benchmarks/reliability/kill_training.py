"""Reliability claim 2 (issue 16): a local LoRA run SIGKILLed at random steps and resumed each time finishes, and its
adapter equals an uninterrupted run's; while a run lives its name is held; once it is killed it is never left
`running`.

    .venv/bin/python benchmarks/reliability/kill_training.py [--kills 10] [--seed 16]

The real `assistant finetune train` CLI in a child process on the bundled SmolLM2 (fp32, 4 made-up facts, batch 2,
50 epochs = 100 steps, a checkpoint every 5 steps). Each round: wait until the history shows a random step between
the last checkpoint + 1 and + 12 (and past the previous kill); freeze it (SIGSTOP) and check a second `--resume` is
refused; SIGKILL; check the record reads `stopped`; the next round is `--resume`. Then one `--resume` to the end, and
an uninterrupted run in this process to compare.
Prints a Markdown table for docs/RELIABILITY.md; progress goes to stderr.
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
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.trained import FACTS, write  # noqa: E402

ASSISTANT = str(Path(sys.executable).with_name("assistant"))
CONFIG = dict(epochs=50, batch_size=2, max_length=96, lr=2e-3, warmup_ratio=0, seed=3, val_fraction=0,
              checkpoint_every=5)
STEPS, GUARD_S = 100, 1800


def command(data: Path, name: str, resume: bool) -> list[str]:
    options = [arg for key, value in CONFIG.items() for arg in (f"--{key.replace('_', '-')}", str(value))]
    return [ASSISTANT, "finetune", "train", str(data), "--name", name, *options, *(["--resume"] if resume else [])]


def last_step(run_dir: Path) -> int:
    history = run_dir / "history.jsonl"
    lines = history.read_text().splitlines() if history.is_file() else []
    return max((json.loads(line).get("step", 0) for line in lines if line.strip()), default=0)


def checkpoint_step(run_dir: Path) -> int:
    state = run_dir / "checkpoint" / "state.json"
    return json.loads(state.read_text())["step"] if state.is_file() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    from assistant.config import Settings
    from assistant.finetune.lora import LoraTrainConfig, train_lora
    from assistant.finetune.registry import Registry

    with tempfile.TemporaryDirectory(prefix="kill-training-") as folder:
        home = Path(folder)
        data = write(home / "facts.jsonl", FACTS)
        env = {**os.environ, "ASSISTANT_HOME": str(home), "ASSISTANT_LOCAL_PRECISION": "fp32"}
        registry = Registry(home / "finetuned")
        run_dir = registry.run_dir("killed")
        refused = stopped = kills = 0
        killed_at: list[int] = []
        started = time.perf_counter()
        for round_ in range(args.kills):
            child = subprocess.Popen(command(data, "killed", resume=round_ > 0), env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Past the previous kill too: until the resumed run rewrites the history (at its start, back to its
            # checkpoint), the file still shows the killed run's last steps, which a target at or below would match
            # at once — freezing a child that has not started, and so holds no lock yet.
            target = max(checkpoint_step(run_dir) + rng.randint(1, 12), last_step(run_dir) + 1)
            deadline = time.monotonic() + GUARD_S
            while last_step(run_dir) < target and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if child.poll() is not None:
                print(f"round {round_}: the run ended before step {target}", file=sys.stderr)
                break
            child.send_signal(signal.SIGSTOP)  # frozen with its lock held while the second run tries
            second = subprocess.run(command(data, "killed", resume=True), env=env, capture_output=True, text=True,
                                    timeout=GUARD_S)
            refused += second.returncode != 0 and "being trained by another process" in second.stderr
            child.send_signal(signal.SIGKILL)
            child.wait()
            kills += 1
            killed_at.append(last_step(run_dir))
            stopped += registry.get("killed").status == "stopped"
            print(f"round {round_}: killed at step {killed_at[-1]} (checkpoint {checkpoint_step(run_dir)})",
                  file=sys.stderr)
        final = subprocess.run(command(data, "killed", resume=True), env=env, capture_output=True, text=True,
                               timeout=GUARD_S)
        record = registry.get("killed")
        seconds = time.perf_counter() - started

        config = LoraTrainConfig.create(**{("learning_rate" if k == "lr" else k): v for k, v in CONFIG.items()})
        train_lora(Settings(home=home, local_precision="fp32"), registry, "unbroken", data, config, progress=False)
        import torch
        from safetensors.torch import load_file

        pieced, whole = (load_file(registry.adapter_dir(name) / "adapter_model.safetensors")
                         for name in ("killed", "unbroken"))
        worst = max(float((pieced[k] - whole[k]).abs().max()) for k in whole)
        bitwise = all(torch.equal(pieced[k], whole[k]) for k in whole)

    print(f"\n{datetime.date.today()}, kill_training.py --kills {args.kills} --seed {args.seed}, {seconds:.0f} s\n")
    print("| check | result |")
    print("|---|---|")
    print(f"| SIGKILLs at random steps (of {STEPS}) | {kills}: steps {', '.join(map(str, killed_at))} |")
    print(f"| a second `--resume` while the run lived: refused | {refused} / {kills} |")
    print(f"| record after each kill reads `stopped` (never `running` with no process) | {stopped} / {kills} |")
    print(f"| final `--resume` | exit {final.returncode}, {record.status}, {record.metrics.get('steps')} steps |")
    print(f"| adapter vs an uninterrupted run | {'bitwise equal' if bitwise else f'max abs difference {worst:.2e}'} |")
    if final.returncode or not bitwise and worst > 1e-5 or refused < kills or stopped < kills:
        sys.exit(1)


if __name__ == "__main__":
    main()
