"""`assistant finetune …`: check data, train (local LoRA or an OpenAI job), and manage the named models."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from assistant.config import load_settings
from assistant.errors import ConfigError
from assistant.finetune.registry import PROVIDERS, Registry

finetune_app = typer.Typer(help="Fine-tune a model on your examples and manage the results.", no_args_is_help=True)
DataArg = Annotated[Path, typer.Argument(help="Examples: JSONL (prompt/completion, prompt/response, messages) or CSV.")]
NameArg = Annotated[str, typer.Argument(help="The fine-tuned model's name (see `assistant finetune list`).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ModelOpt = Annotated[Optional[str], typer.Option(
    help="Base model: an OpenAI model id (e.g. gpt-4o-mini-2024-07-18), or a local folder/.gguf (default: bundled).")]
ValFractionOpt = Annotated[float, typer.Option(help="Share of the examples held out for validation.")]
EpochsOpt = Annotated[Optional[int], typer.Option(min=1, max=100, help="Passes over the training data.")]


@finetune_app.command()
def validate(
    data: DataArg,
    model: ModelOpt = None,
    validation: Annotated[Optional[Path], typer.Option(help="A separate validation file (then nothing is split off).")]
    = None,
    val_fraction: ValFractionOpt = 0.1,
    epochs: EpochsOpt = None,
    max_length: Annotated[Optional[int], typer.Option(help="Longest example in tokens (local default: training "
                                                      "max length; OpenAI: the model's limit).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a training file: format errors by line, duplicates, token counts, the split, cost for OpenAI models."""
    from assistant.finetune.datasets import validate as check
    from assistant.finetune.lora import LoraTrainConfig, token_counter
    from assistant.pricing import price_of

    settings = load_settings()
    openai_price = price_of(model) if model else None
    count, tokenizer = token_counter(settings, None if openai_price else model)
    if openai_price:
        tokenizer += " (an approximation of OpenAI's tokenizer)"
    limit = max_length or (openai_price.training_context if openai_price else LoraTrainConfig().max_length)
    report = check(data, count, tokenizer, limit, val_fraction, validation is not None,
                   model if openai_price else None, epochs)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    if report.errors:
        raise typer.Exit(1)


def _print_report(report) -> None:
    print(f"{report.path}: {report.examples} examples read, {len(report.errors)} line(s) with errors")
    for error in report.errors:
        print(f"  ERROR {error}")
    for line, first in report.exact_duplicates:
        print(f"  DUPLICATE line {line} repeats line {first} (dropped by prepare/train)")
    for line, other, similarity in report.near_duplicates:
        print(f"  NEAR-DUPLICATE line {line} ~ line {other} (similarity {similarity:.2f})")
    for line, tokens in report.too_long:
        print(f"  TOO LONG line {line}: {tokens} tokens > {report.max_length}")
    t = report.tokens
    print(f"tokens per example ({report.tokenizer}): min {t.min}, mean {t.mean}, p95 {t.p95}, max {t.max}; "
          f"total {t.total}")
    print(f"split: {report.train} train, {report.validation} validation")
    if report.cost:
        c = report.cost
        print(f"OpenAI {c.model}: {c.epochs} epochs ≈ {c.billed_tokens:,} billed tokens ≈ ${c.usd:.2f} ({c.note})")
    for warning in report.warnings:
        print(f"  WARNING {warning}")


@finetune_app.command()
def prepare(
    data: DataArg,
    out: Annotated[Path, typer.Option(help="Clean chat-format JSONL to write; the split goes to OUT.val.jsonl.")],
    val_fraction: ValFractionOpt = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the shuffle before the split.")] = 0,
) -> None:
    """Write the clean chat-format training file (bad lines and exact duplicates dropped) and a validation split."""
    from assistant.finetune.datasets import prepare as write

    train, val, n_train, n_val = write(data, out, val_fraction, seed)
    print(f"wrote {n_train} examples to {train}" + (f" and {n_val} to {val}" if val else ""))


@finetune_app.command()
def train(
    data: DataArg,
    name: Annotated[str, typer.Option(help="Name to register the model under.")],
    provider: Annotated[str, typer.Option(help=f"{' | '.join(PROVIDERS)}.")] = "local",
    model: ModelOpt = None,
    validation: Annotated[Optional[Path], typer.Option(help="Validation file (default: split off the data).")] = None,
    val_fraction: Annotated[Optional[float], typer.Option(help="Share of the examples held out for validation "
                                                      "(default 0.1; 0.2 for an embedder or reranker).")] = None,
    epochs: EpochsOpt = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Examples per step.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (local).")] = None,
    lora_r: Annotated[Optional[int], typer.Option(help="LoRA rank (local).")] = None,
    lora_alpha: Annotated[Optional[int], typer.Option(help="LoRA alpha (local).")] = None,
    lora_dropout: Annotated[Optional[float], typer.Option(help="LoRA dropout (local).")] = None,
    target_modules: Annotated[Optional[str], typer.Option(help="Comma-separated module names (local).")] = None,
    grad_accum: Annotated[Optional[int], typer.Option(help="Steps to accumulate gradients over (local).")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="Longest example in tokens; longer are cut (local).")]
    = None,
    warmup_ratio: Annotated[Optional[float], typer.Option(help="Share of steps warming up the LR (local).")] = None,
    eval_every: Annotated[Optional[int], typer.Option(help="Validate every N steps; 0 = each epoch (local).")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Evaluations without improvement before stopping "
                                                    "early; 0 = never (local).")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(min=1, help="Steps between resumable checkpoints "
                                                            "(local; default 10).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for the split, shuffling and dropout.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted local run from its last checkpoint.")] = False,
    processes: Annotated[int, typer.Option(min=1, max=64, help="Train data-parallel in N processes on this machine: "
                                           "a GPU each, or shares of the CPU cores (local generator).")] = 1,
    suffix: Annotated[Optional[str], typer.Option(help="Suffix of the OpenAI model id.")] = None,
    lr_multiplier: Annotated[Optional[float], typer.Option(help="Learning-rate multiplier (OpenAI).")] = None,
    model_id: Annotated[Optional[str], typer.Option(hidden=True, help="A second id (assistant serve's ft:…).")]
    = None,
    target: Annotated[str, typer.Option(help="What to tune: generator (the answering model) | embedder (retrieval: "
                                             "questions near their answers) | reranker (a cross-encoder).")]
    = "generator",
) -> None:
    """Fine-tune on DATA and register the result as NAME (use it with --strategy fine-tuned:NAME; an embedder
    with ASSISTANT_EMBEDDER=NAME after `kb reindex --embedder NAME`, a reranker with ASSISTANT_RERANKER=NAME)."""
    settings = load_settings()
    registry = Registry.from_settings(settings)
    if processes > 1 and (target != "generator" or provider != "local"):
        raise ConfigError("--processes is for local LoRA training of the generator (--provider local, --target "
                          "generator).")
    if target in {"embedder", "reranker"}:
        _train_retriever(settings, registry, target, name, data, validation, val_fraction, epochs, batch_size, lr,
                         patience, seed, resume)
        return
    if target != "generator":
        raise ConfigError(f"Unknown --target {target!r}; choose generator, embedder or reranker.")
    if provider == "openai":
        from assistant.finetune import openai_jobs

        if model is None:
            raise ConfigError("--provider openai needs --model, e.g. --model gpt-4o-mini-2024-07-18.")
        openai_jobs.start_job(settings, registry, name, model, data, validation, suffix=suffix, epochs=epochs,
                              batch_size=batch_size, lr_multiplier=lr_multiplier, seed=seed,
                              val_fraction=0.1 if val_fraction is None else val_fraction)
        _follow_openai(settings, registry, name)
        return
    if provider != "local":
        raise ConfigError(f"Unknown provider {provider!r}; choose one of: {', '.join(PROVIDERS)}.")
    from assistant.finetune.lora import LoraTrainConfig, train_lora

    chosen = dict(epochs=epochs, batch_size=batch_size, learning_rate=lr, r=lora_r, alpha=lora_alpha,
                  dropout=lora_dropout, gradient_accumulation=grad_accum, max_length=max_length,
                  warmup_ratio=warmup_ratio, eval_every=eval_every, patience=patience, seed=seed,
                  checkpoint_every=checkpoint_every,
                  val_fraction=val_fraction,
                  target_modules=target_modules.split(",") if target_modules else None)
    config = LoraTrainConfig.create(**{k: v for k, v in chosen.items() if v is not None})
    record = train_lora(settings, registry, name, data, config, validation=validation, base_model=model,
                        resume=resume, model_id=model_id, processes=processes)
    if os.environ.get("RANK", "0") != "0":  # under torchrun: rank 0 reports for the run
        return
    _print_record(record)
    if record.status == "succeeded":
        print(f"Use it: assistant ask \"…\" --strategy fine-tuned:{name}")


def _train_retriever(settings, registry, target, name, data, validation, val_fraction, epochs, batch_size, lr,
                     patience, seed, resume) -> None:
    options = dict(epochs=epochs, batch_size=batch_size, learning_rate=lr, patience=patience, seed=seed,
                   val_fraction=val_fraction)
    if target == "embedder":
        from assistant.finetune.embedder import EmbedderTrainConfig, train_embedder

        record = train_embedder(settings, registry, name, data, EmbedderTrainConfig.create(**options), validation,
                                resume=resume)
    else:
        from assistant.finetune.reranker import RerankerTrainConfig, train_reranker

        if resume:
            raise ConfigError("A reranker run is short; it is not resumable: train it again under a new name.")
        record = train_reranker(settings, registry, name, data, RerankerTrainConfig.create(**options), validation)
    _print_record(record)
    before, after = (record.metrics.get(k) for k in (("before", "after") if target == "embedder"
                                                     else ("embedder_alone", "with_reranker")))
    if before and after:
        print("held-out retrieval: " + ", ".join(f"{m} {before[m]:.3f} → {after[m]:.3f}" for m in after))
        if after["mrr@10"] <= before["mrr@10"]:
            print(f"warning: it did not beat the {'base embedder' if target == 'embedder' else 'embedder alone'} on "
                  "the held-out questions (more examples, or more epochs, may); keep it off until it does.")
            return
    if record.status == "succeeded":
        print(f"Use it: assistant kb reindex --embedder {name}, then ASSISTANT_EMBEDDER={name}" if target == "embedder"
              else f"Use it: ASSISTANT_RERANKER={name}")


def _follow_openai(settings, registry, name: str) -> None:
    from assistant.finetune import openai_jobs

    try:
        record = openai_jobs.follow(settings, registry, name, echo=print)
    except KeyboardInterrupt:
        print(f"\nDetached; the job keeps running. Re-attach: assistant finetune status {name}; "
              f"stop it: assistant finetune cancel {name}")
        return
    _print_record(record)
    if record.status in {"failed", "cancelled"}:
        raise typer.Exit(1)


@finetune_app.command()
def status(name: NameArg) -> None:
    """Show a model's state; for a running OpenAI job, follow its events until it ends (Ctrl-C detaches)."""
    settings = load_settings()
    registry = Registry.from_settings(settings)
    record = registry.get(name)
    if record.provider == "openai" and record.status in {"created", "running"}:
        _follow_openai(settings, registry, name)
    else:
        _print_record(record)


@finetune_app.command()
def cancel(name: NameArg) -> None:
    """Stop a training run: cancels an OpenAI job; asks a local run to stop at its next step (resume later)."""
    settings = load_settings()
    registry = Registry.from_settings(settings)
    record = registry.get(name)
    if record.provider == "openai":
        from assistant.finetune import openai_jobs

        record = openai_jobs.cancel(settings, registry, name)
    else:
        from assistant.finetune.lora import request_stop

        request_stop(registry, name)
    print(f"{name}: {record.status}" + (" (stop requested)" if record.provider == "local" else ""))


@finetune_app.command("list")
def list_models(as_json: JsonOpt = False) -> None:
    """Every named model: provider, base, status, metrics, created."""
    records = Registry.from_settings(load_settings()).list()
    if as_json:
        from dataclasses import asdict

        print(json.dumps([asdict(r) for r in records], indent=2))
        return
    if not records:
        print("No fine-tuned models yet. Train one: assistant finetune train knowledge/examples.jsonl --name NAME")
    for record in records:
        _print_record(record)


def _print_record(record) -> None:
    metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.metrics.items())
    model = f" → {record.model_id}" if record.model_id else ""
    kind = "" if record.target == "generator" else f" {record.target}"
    print(f"{record.name}  [{record.provider}{kind}, {record.status}]  base {record.base_model}{model}  "
          f"created {record.created}" + (f"\n  {metrics}" if metrics else "") +
          (f"\n  error: {record.error}" if record.error else ""))


@finetune_app.command()
def remove(name: NameArg) -> None:
    """Delete a named model and its files (an OpenAI model itself stays in your OpenAI account)."""
    Registry.from_settings(load_settings()).remove(name)
    print(f"removed {name}")


@finetune_app.command()
def export(
    name: NameArg,
    out: Annotated[Optional[Path], typer.Argument(help="Where to write: a .gguf file (gguf), or a folder.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="gguf (one merged GGUF file) | ollama (GGUF + Modelfile) | "
                                                      "hf (merged Hugging Face folder).")] = "hf",
    quant: Annotated[str, typer.Option(help="gguf/ollama: f16 | q8_0 | q4_k_m.")] = "q8_0",
    merged: Annotated[Optional[Path], typer.Option(help="Same as --format hf OUT.")] = None,
) -> None:
    """Write a local fine-tuned model with its adapter merged in, for llama.cpp, Ollama, LM Studio, vLLM or TGI."""
    from assistant.finetune.export import export as run_export

    if (out is None) == (merged is None):
        raise ConfigError("Say where to write: `assistant finetune export NAME OUT [--format gguf|ollama|hf]` "
                          "(or --merged FOLDER for a Hugging Face folder).")
    settings = load_settings()
    written = run_export(settings, Registry.from_settings(settings), name, out or merged, "hf" if merged else fmt,
                         quant)
    print(f"wrote {written}" + (f"  (then: ollama create {name} -f {written / 'Modelfile'})" if fmt == "ollama"
                                else ""))
