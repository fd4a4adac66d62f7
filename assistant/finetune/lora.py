"""Local LoRA fine-tuning with peft on the configured local base model (the bundled SmolLM2 by default).

A plain training loop rather than transformers' Trainer: it is short, and it gives what a CPU run needs — batches
padded only to their own longest example, loss on the answer tokens only, validation with early stopping that keeps
the best adapter, resumable checkpoints (Ctrl-C, `assistant finetune cancel`, or a crash), and a live history file
the app can chart while the run goes on. With `processes` > 1 it runs data-parallel (parallel.py).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from assistant import hf
from assistant.config import Settings
from assistant.device import resolve_device
from assistant.errors import AssistantError, ConfigError
from assistant.examples import Example
from assistant.finetune import checkpoint, parallel
from assistant.finetune.answer_loss import answer_loss_sum
from assistant.finetune.curves import plot_loss
from assistant.finetune.datasets import dataset_hash, duplicates, load_examples, prompt_hash, split
from assistant.finetune.lora_config import LoraTrainConfig
from assistant.finetune.lora_data import IGNORE, batches, encode, iterate
from assistant.finetune.precision import BF16, training_precision
from assistant.finetune.prefix import decode
from assistant.finetune.registry import ModelRecord, Registry, holds_training_lock

__all__ = ["LoraTrainConfig", "request_stop", "token_counter", "train_lora"]

RESUMABLE = {"running", "stopped", "failed"}


def token_counter(settings: Settings, model: str | None):
    """(count tokens of one training example, tokenizer name) with the local model's own tokenizer."""
    from assistant.finetune.lora_data import token_counter as counter

    tokenizer, name = _tokenizer(settings, model)
    return counter(tokenizer), name


def request_stop(registry: Registry, name: str) -> None:
    """Ask a running local job to checkpoint and stop at its next step (it can be resumed)."""
    registry.get(name)
    registry.run_dir(name).mkdir(parents=True, exist_ok=True)
    (registry.run_dir(name) / "STOP").touch()


@holds_training_lock
def train_lora(settings: Settings, registry: Registry, name: str, data: Path, config: LoraTrainConfig,
               validation: Path | None = None, base_model: str | None = None, resume: bool = False,
               progress: bool = True, on_step=None, model_id: str | None = None, processes: int = 1) -> ModelRecord:
    """Train, register and return the model record. `on_step(step, loss)` is a hook for callers (the app; with
    several processes it runs in rank 0 and must pickle); `model_id` is a second id the model answers to
    (`assistant serve`'s `ft:…` ids); `processes` > 1 trains data-parallel on this machine."""
    train_set, val_set = _load_data(data, validation, config)
    launched = parallel.from_torchrun()
    if launched is not None and processes > 1:
        raise ConfigError("Under torchrun its --nproc-per-node sets the processes; leave out --processes.")
    parallel.check_processes(launched.size if launched else processes,
                             config.batch_size * config.gradient_accumulation, resolve_device(settings.device).name)
    if launched is not None:  # every process runs this; rank 0 opens the record and tells the others
        state, config = launched.from_main(lambda: _start_record(registry, name, config, train_set, base_model,
                                                                 resume, model_id))
        _Run(settings, registry, name, config, train_set, val_set, base_model or None, state, progress, on_step,
             world=launched).train()
        launched.barrier()  # every process returns the record rank 0 finished
        return registry.get(name)
    state, config = _start_record(registry, name, config, train_set, base_model, resume, model_id)
    args = (settings, registry, name, config, train_set, val_set, base_model or None, state, progress, on_step)
    if processes == 1:
        return _Run(*args).train()
    try:
        parallel.spawn(processes, _train_in, *args)
    except AssistantError as exc:
        if registry.get(name).status == "running":
            registry.update(name, status="failed", error=str(exc))
        raise
    record = registry.get(name)
    if record.status == "running":  # interrupted before rank 0 could say so
        record = registry.update(name, status="stopped", error=f"stopped; continue with `assistant finetune train "
                                                               f"DATA --name {name} --resume`")
    return record


def _train_in(world: parallel.World, *args) -> None:
    _Run(*args, world=world).train()


def _load_data(data: Path, validation: Path | None, config: LoraTrainConfig) -> tuple[list[Example], list[Example]]:
    examples, _ = load_examples(data)
    dropped = {line for line, _ in duplicates(examples)[0]}
    examples = [e for e in examples if e.line not in dropped]
    if validation is not None:
        return examples, load_examples(validation)[0]
    return split(examples, config.val_fraction, config.seed)


def _start_record(registry, name, config, train_set, base_model, resume,
                  model_id=None) -> tuple[dict | None, LoraTrainConfig]:
    """(checkpoint state or None, the configuration to train with), the record marked as running."""
    data_hash = dataset_hash(train_set)
    if resume:
        record = registry.get(name)
        state = checkpoint.load_state(registry.run_dir(name) / "checkpoint")
        if record.provider != "local" or record.status not in RESUMABLE:
            raise AssistantError(f"{name!r} has no interrupted local run to resume (status {record.status}).")
        if (state["data_hash"] if state else record.data_hash) != data_hash:
            raise AssistantError(f"{name!r} was trained on different data; resume with the same file, or train "
                                 "a new name.")
        registry.update(name, status="running", error=None)
        # A run stopped before its first checkpoint (while the model loaded, say) has nothing to continue from: it
        # starts over, with the configuration it was started with.
        return state, LoraTrainConfig(**(state["config"] if state else record.hyperparameters))
    if registry.exists(name):
        raise ConfigError(f"A model named {name!r} already exists ({registry.get(name).status}). Pick another "
                          f"--name, continue it with --resume, or delete it: assistant finetune remove {name}")
    from assistant.models.local_weights import resolve_source

    registry.save(ModelRecord(name, "local", resolve_source(base_model).name, "running",
                              hyperparameters=config.model_dump(), data_hash=data_hash, base_path=base_model,
                              training_hashes=[prompt_hash(e.prompt) for e in train_set], model_id=model_id))
    return None, config


def _tokenizer(settings: Settings, model: str | None):
    from transformers import AutoTokenizer

    from assistant.models.base import check_chat_template
    from assistant.models.local_weights import resolve_source, weights_folder

    source = resolve_source(model)
    tokenizer = AutoTokenizer.from_pretrained(weights_folder(source, settings.model_cache_dir))
    if tokenizer.chat_template:  # training formats every example with it
        check_chat_template(lambda chat: tokenizer.apply_chat_template(chat, tokenize=False), source.name)
    return tokenizer, source.name


class _Run:
    def __init__(self, settings, registry, name, config, train_set, val_set, base_model, state, progress, on_step,
                 world: parallel.World = parallel.ALONE):
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
        from transformers import AutoModelForCausalLM, get_linear_schedule_with_warmup

        from assistant.models.local_weights import resolve_source, weights_folder

        hf.quiet()
        self.registry, self.name, self.config = registry, name, config
        self.run_dir = registry.run_dir(name)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.world = world
        self.progress, self.on_step = progress and world.main, on_step if world.main else None
        self.tokenizer, _ = _tokenizer(settings, base_model)
        folder = weights_folder(resolve_source(base_model), settings.model_cache_dir)
        if settings.threads or world.size > 1:
            torch.set_num_threads(settings.threads or parallel.threads_for(world))
        device = resolve_device(settings.device)
        self.device = type(device)(parallel.device_for(world, device.name), device.why)
        # bf16 autocast where the device multiplies bf16 natively (~1.7× faster a step on Zen 4); validation stays
        # fp32, the precision the adapter is served in; local_precision=fp32 opts out. Eager attention with bf16: at
        # FAQ lengths its small matmuls beat the CPU flash-attention kernel's bf16 backward.
        self.precision = training_precision(settings.local_precision, self.device)
        self.bf16 = self.precision.name == BF16
        base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                    **({"attn_implementation": "eager"} if self.bf16 else {}))
        base = base.to(self.device.name)
        lora = LoraConfig(task_type="CAUSAL_LM", r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                          target_modules=list(config.target_modules))
        torch.manual_seed(config.seed)  # here, not earlier: a first-time GGUF conversion also draws random numbers
        try:
            self.model = get_peft_model(base, lora)
        except ValueError as exc:  # e.g. a target module the base model does not have
            registry.update(name, status="failed", error=str(exc))
            raise ConfigError(f"LoRA cannot be applied: {exc}") from None
        self.train_items = [encode(self.tokenizer, e, config.max_length) for e in train_set]
        self.val_items = [encode(self.tokenizer, e, config.max_length) for e in val_set]
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.steps_per_epoch = math.ceil(math.ceil(len(self.train_items) / config.batch_size)
                                         / config.gradient_accumulation)
        self.total_steps = self.steps_per_epoch * config.epochs
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, round(config.warmup_ratio *
                                                                               self.total_steps), self.total_steps)
        self.state = state or {"step": 0, "history": [], "best_val": None, "best_step": None, "bad_evals": 0,
                               "trained_tokens": 0, "seconds": 0.0, "config": config.model_dump(),
                               "data_hash": dataset_hash(train_set), "stopped_early": False}
        if state is not None:
            set_peft_model_state_dict(self.model, checkpoint.restore(state, self.optimizer, self.scheduler))

    # -- the loop ----------------------------------------------------------------------------------------------
    def train(self) -> ModelRecord:
        if self.world.main:
            (self.run_dir / "STOP").unlink(missing_ok=True)
            # The file the app charts from: what the checkpoint knows (steps after it are trained again).
            (self.run_dir / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in self.state["history"]))
        if self.state["step"] == 0 and self.val_items:
            self._evaluate()  # the starting point of the validation curve
        bar = tqdm(total=self.total_steps, initial=self.state["step"], desc=f"training {self.name}", unit="step",
                   disable=not self.progress)
        started = time.perf_counter() - self.state["seconds"]
        try:
            finished = self._epochs(bar, started)
        except KeyboardInterrupt:
            finished = False
        except Exception as exc:
            if self.world.main:
                self.registry.update(self.name, status="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            bar.close()
        self.state["seconds"] = time.perf_counter() - started
        if not self.world.main:
            return self.registry.get(self.name)  # what rank 0 is writing; only the main process returns it
        if not finished:
            self._checkpoint()
            return self.registry.update(self.name, status="stopped", metrics=self._metrics(),
                                        error=f"stopped at step {self.state['step']}/{self.total_steps}; continue "
                                              f"with `assistant finetune train DATA --name {self.name} --resume`")
        return self._finish()

    def _epochs(self, bar, started: float) -> bool:
        """True when training ran to its end (or stopped early); False when asked to stop."""
        accumulate = self.config.gradient_accumulation
        while self.state["step"] < self.total_steps:
            epoch, done_in_epoch = divmod(self.state["step"], self.steps_per_epoch)
            order = batches(self.train_items, self.config.batch_size, self.config.seed, epoch)
            order = order[done_in_epoch * accumulate:]  # a resumed run skips what it already trained on
            for group_start in range(0, len(order), accumulate):
                loss = self._step(order[group_start:group_start + accumulate])
                self.state["step"] += 1
                self.state["seconds"] = time.perf_counter() - started
                self._log({"step": self.state["step"], "epoch": round(self.state["step"] / self.steps_per_epoch, 3),
                           "train_loss": round(loss, 5), "lr": self.scheduler.get_last_lr()[0]})
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                bar.update()
                if self.on_step:
                    self.on_step(self.state["step"], loss)
                if self._due_for_eval() and self._evaluate():
                    self.state["stopped_early"] = True
                    return True
                if self.state["step"] % self.config.checkpoint_every == 0:
                    self._checkpoint()
                if self.world.decided_by_main(self.world.main and (self.run_dir / "STOP").exists(),
                                              self.device.name):
                    (self.run_dir / "STOP").unlink(missing_ok=True)
                    return False
        return True

    def _step(self, group: list[list[int]]) -> float:
        self.model.train()
        tokens = sum(self._trained(batch) for batch in group)
        total = 0.0
        mine = [share for batch in group if (share := self.world.share(batch))]  # all of it when training alone
        for batch in iterate(self.train_items, mine, self.pad_id):
            # Each batch's mean loss weighted by its share of the group's answer tokens: the group's token mean.
            share = int((batch["labels"][:, 1:] != -100).sum()) / max(1, tokens)
            loss = self._loss(batch, autocast=self.bf16) * share
            loss.backward()
            total += loss.item()
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        total = self.world.sum_gradients(trainable, total)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state["trained_tokens"] += sum(len(self.train_items[i].input_ids) for b in group for i in b)
        return total

    def _loss(self, batch: dict[str, torch.Tensor], autocast: bool = False) -> torch.Tensor:
        """Mean cross-entropy over the answer tokens, as `model(**batch).loss` computes it, but with the output layer
        (a 49k-token vocabulary: a fifth of the model's multiply-adds) applied only where a label is trained."""
        model = self.model.get_base_model()  # the LoRA layers live inside it
        batch = {key: value.to(self.device.name) for key, value in batch.items()}
        labels = batch["labels"][:, 1:]
        trained = labels != IGNORE
        with torch.autocast(self.device.kind, dtype=torch.bfloat16, enabled=autocast):
            hidden = decode(model.get_decoder(), batch["input_ids"], batch["attention_mask"])
            loss = answer_loss_sum(hidden[:, :-1][trained], model.get_output_embeddings(), labels[trained])
        return loss / max(1, int(trained.sum()))

    def _trained(self, batch: list[int]) -> int:
        # shifted by one: the first label is never predicted
        return sum(sum(label != -100 for label in self.train_items[i].labels[1:]) for i in batch)

    def _due_for_eval(self) -> bool:
        step, every = self.state["step"], self.config.eval_every or self.steps_per_epoch
        return bool(self.val_items) and (step % every == 0 or step == self.total_steps)

    @torch.no_grad()
    def _evaluate(self) -> bool:
        """Validation loss (mean over answer tokens); keeps the best adapter. True when patience ran out."""
        self.model.eval()
        loss_sum, count = 0.0, 0
        order = [list(range(i, min(i + self.config.batch_size, len(self.val_items))))
                 for i in range(0, len(self.val_items), self.config.batch_size)]
        for batch in iterate(self.val_items, self.world.share(order), self.pad_id):
            n = int((batch["labels"][:, 1:] != -100).sum())
            loss_sum += float(self._loss(batch)) * n
            count += n
        # Every process gets the same sum, so each decides the same about the best step and stopping early.
        loss_sum, count = self.world.sum(loss_sum, count, device=self.device.name)
        val = loss_sum / max(1, count)
        self._log({"step": self.state["step"], "val_loss": round(val, 5)})
        best = self.state["best_val"]
        if best is None or val < best - 1e-4:
            self.state.update(best_val=val, best_step=self.state["step"], bad_evals=0)
            if self.state["step"] > 0 and self.world.main:
                self._save_adapter()
            return False
        self.state["bad_evals"] += 1
        return self.config.patience > 0 and self.state["bad_evals"] >= self.config.patience

    # -- files -------------------------------------------------------------------------------------------------
    def _log(self, entry: dict) -> None:
        self.state["history"].append(entry)
        if not self.world.main:
            return
        with (self.run_dir / "history.jsonl").open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")

    def _checkpoint(self) -> None:
        from peft import get_peft_model_state_dict

        if not self.world.main:
            return
        checkpoint.save(self.run_dir / "checkpoint", get_peft_model_state_dict(self.model), self.optimizer,
                        self.scheduler, self.state)

    def _save_adapter(self) -> None:
        target = self.registry.adapter_dir(self.name)
        staging = target.with_name("adapter.staging")
        shutil.rmtree(staging, ignore_errors=True)
        self.model.save_pretrained(staging, safe_serialization=True)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)

    def _finish(self) -> ModelRecord:
        if not self.val_items or self.state["best_step"] in (None, 0):
            self._save_adapter()  # no validation (or it never improved): the final weights are the result
        self._checkpoint()
        metrics = self._metrics()
        (self.run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        plot_loss(self.state["history"], self.run_dir / "loss_curve.png", f"LoRA {self.name}")
        record = self.registry.update(self.name, status="succeeded", metrics=metrics, error=None)
        card = asdict(record) | {"trained_with": "ragtune LoRA (peft)", "examples": {"train": len(self.train_items),
                                                                                     "validation": len(self.val_items)}}
        card.pop("training_hashes")
        (self.registry.adapter_dir(self.name) / "card.json").write_text(json.dumps(card, indent=2))
        return record

    def _metrics(self) -> dict:
        history, state = self.state["history"], self.state
        train = [h["train_loss"] for h in history if "train_loss" in h]
        val = [h["val_loss"] for h in history if "val_loss" in h]
        tail = train[-self.steps_per_epoch:]
        metrics = {"steps": state["step"], "total_steps": self.total_steps,
                   "epochs": round(state["step"] / self.steps_per_epoch, 2),
                   "train_loss": round(sum(tail) / len(tail), 4) if tail else None,
                   "first_train_loss": train[0] if train else None,
                   "stopped_early": state["stopped_early"], "seconds": round(state["seconds"], 1),
                   "precision": self.precision.name, "device": self.device.name,
                   "tokens_per_s": round(state["trained_tokens"] / max(state["seconds"], 1e-9), 1)}
        if val:
            metrics |= {"initial_val_loss": val[0], "val_loss": val[-1], "best_val_loss": round(state["best_val"], 5),
                        "best_step": state["best_step"]}
        return metrics
