"""Data-parallel LoRA (issue 15): the same run with 1 and with 2 processes (`assistant finetune train --processes N`),
in one run, on bench_finetune.py's generated FAQ pairs.

    .venv/bin/python benchmarks/bench_finetune_parallel.py [--pairs 96] [--processes 1,2] [--epochs 1]

Each run is the real command in a child process. Reported: wall time (start, spawn, model load, training), training
steps/s and tokens/s from the run's own metrics (rank 0's clock, from the first step to the last), and how far the
two adapters are apart (relative Frobenius norm of lora_B, which starts at zero: the training signal itself; with
the default dropout each process draws its own masks, so this is not the equality the tests check at dropout 0).
Prints a Markdown table for docs/BENCHMARKS.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_finetune import machine, write_dataset  # noqa: E402


def run(data: Path, home: Path, name: str, processes: int, epochs: int) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ASSISTANT_")}
    env["ASSISTANT_HOME"] = str(home)
    command = [sys.executable, "-m", "assistant", "finetune", "train", str(data), "--name", name, "--epochs",
               str(epochs), "--processes", str(processes), "--patience", "0"]
    started = time.perf_counter()
    subprocess.run(command, env=env, stdout=sys.stderr, check=True)
    metrics = json.loads((home / "finetuned" / name / "run" / "metrics.json").read_text())
    return {"wall": time.perf_counter() - started, **metrics}


def lora_b_distance(home: Path, a: str, b: str) -> float:
    import torch
    from safetensors.torch import load_file

    first, second = (load_file(home / "finetuned" / n / "adapter" / "adapter_model.safetensors") for n in (a, b))
    keys = [k for k in first if "lora_B" in k]
    error = torch.sqrt(sum(((first[k] - second[k]) ** 2).sum() for k in keys))
    return float(error / torch.sqrt(sum((first[k] ** 2).sum() for k in keys)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--processes", default="1,2")
    args = parser.parse_args()
    data = write_dataset(args.pairs)
    counts = [int(n) for n in args.processes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as folder:
        home = Path(folder)
        # The bundled GGUF is dequantised for training once per data home: before the clocks start, for every run.
        from assistant.config import Settings
        from assistant.models.local_weights import resolve_source, weights_folder

        weights_folder(resolve_source(None), Settings(home=home).model_cache_dir)
        results = {n: run(data, home, f"p{n}", n, args.epochs) for n in counts}
        base = results[counts[0]]
        print(f"\n{datetime.date.today()}, {machine()}; {args.pairs} pairs, {args.epochs} epoch(s), default "
              f"config ({base['precision']}), {base['steps']} steps\n")
        print("| processes | wall s | training s | steps/s | tokens/s | vs 1 process (steps/s) | final val loss "
              "| lora_B vs 1 process |")
        print("|---|---|---|---|---|---|---|---|")
        for n, result in results.items():
            rate = result["steps"] / result["seconds"]
            distance = "—" if n == counts[0] else f"{lora_b_distance(home, f'p{counts[0]}', f'p{n}'):.1e}"
            print(f"| {n} | {result['wall']:.0f} | {result['seconds']:.0f} | {rate:.3f} | {result['tokens_per_s']:.0f} "
                  f"| {rate / (base['steps'] / base['seconds']):.2f}× | {result.get('val_loss', float('nan')):.4f} "
                  f"| {distance} |")


if __name__ == "__main__":
    main()
