"""Where a local LoRA training step's time goes (issue 17): data, forward, backward, optimizer — for the trainer's
step on one real batch of the fine-tuning benchmark's FAQ set, per precision path.

    .venv/bin/python benchmarks/profile_lora_step.py [--cpu avx2] [--precision auto|fp32|bf16] [--trainer before]

`--cpu avx2` caps torch's kernels at AVX2 (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA, set
before torch loads), which is what an AVX2-only CPU runs. The batch is 8 examples of the set's median length, as the
trainer's length-grouped batches are; times are the best of `--repeats` after one warm-up, wall clock on all cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_finetune import AVX2, write_dataset  # noqa: E402  (imports no torch: the caps come first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", choices=["native", "avx2"], default="native")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="local_precision (auto: bf16 autocast with native bf16, else fp32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trainer", choices=["before", "now"], default="now",
                        help="before: the trainer before issue 17 (as bench_finetune.py's baseline)")
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("ASSISTANT_HOME", "/tmp/bench-home")))
    args = parser.parse_args()
    if args.cpu == "avx2":
        os.environ.update(AVX2)
    os.environ["ASSISTANT_LOCAL_PRECISION"] = args.precision
    os.environ["ASSISTANT_HOME"] = str(args.home)

    import torch

    from assistant.config import load_settings
    from assistant.finetune import lora, prefix
    from assistant.finetune.lora import LoraTrainConfig, _load_data, _Run, _start_record
    from assistant.finetune.lora_data import iterate
    from assistant.finetune.registry import Registry

    if args.trainer == "before":  # what bench_finetune.py's BEFORE patches out
        prefix.MIN_SHARED = sys.maxsize
        lora.answer_loss_sum = lambda hidden, layer, labels: torch.nn.functional.cross_entropy(
            layer(hidden).float(), labels, reduction="sum")
    settings = load_settings()
    data = write_dataset(400)
    config = LoraTrainConfig()
    train_set, val_set = _load_data(data, None, config)
    registry = Registry.from_settings(settings)
    name = f"profile-{os.getpid()}"
    state, config = _start_record(registry, name, config, train_set, None, False)
    run = _Run(settings, registry, name, config, train_set, val_set, None, state, False, None)
    lengths = sorted(range(len(run.train_items)), key=lambda i: len(run.train_items[i].input_ids))
    middle = len(lengths) // 2
    batch_ids = [lengths[middle - 4:middle + 4]]
    params = [p for p in run.model.parameters() if p.requires_grad]
    times: dict[str, list[float]] = {"data": [], "forward": [], "backward": [], "optimizer": []}
    for repeat in range(args.repeats + 1):
        run.model.train()
        t0 = time.perf_counter()
        batch = next(iterate(run.train_items, batch_ids, run.pad_id))
        t1 = time.perf_counter()
        loss = run._loss(batch, autocast=run.bf16)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        if repeat:  # the first is a warm-up
            for key, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[key].append(seconds)
    registry.remove(name)
    best = {key: min(values) for key, values in times.items()}
    real = sum(len(run.train_items[i].input_ids) for i in batch_ids[0])
    print(json.dumps({"cpu": args.cpu, "trainer": args.trainer, "precision": run.precision.name,
                      "torch_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
                      "batch": {"examples": len(batch_ids[0]), "real_tokens": real,
                                "width": int(batch["input_ids"].shape[1])},
                      "seconds": {k: round(v, 3) for k, v in best.items()},
                      "step_s": round(sum(best.values()), 3),
                      "tokens_per_s": round(real / sum(best.values()), 1)}, indent=2))


if __name__ == "__main__":
    main()
