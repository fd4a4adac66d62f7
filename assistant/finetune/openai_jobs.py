"""Fine-tuning on OpenAI (or a server speaking its files + fine_tuning.jobs protocol): upload, start, follow, cancel.

The job runs remotely; the registry record (status running + job_id) is what lets `assistant finetune status NAME`
re-attach after Ctrl-C or a crash. Every API failure becomes a one-line BackendError without the key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.examples import Example
from assistant.finetune.datasets import (
    dataset_hash,
    duplicates,
    load_examples,
    prompt_hash,
    split,
    write_chat_jsonl,
)
from assistant.finetune.registry import ModelRecord, Registry
from assistant.models.openai_compat import (
    api_error,
    client_from_settings,
    describe,
    message_of,
    where_of,
)

POLL_SECONDS = 10.0  # jobs take minutes to hours; tests make this tiny
EVENTS_PER_POLL = 100  # the newest page only: OpenAI lists events newest first, and older ones were shown already
REUSABLE = {"failed", "cancelled"}  # a name whose job ended like this may be trained again
FINAL = {"succeeded", "failed", "cancelled"}


def start_job(settings: Settings, registry: Registry, name: str, model: str, data: Path,
              validation: Path | None = None, *, suffix: str | None = None, epochs: int | None = None,
              batch_size: int | None = None, lr_multiplier: float | None = None,
              seed: int | None = None, val_fraction: float = 0.0) -> ModelRecord:
    """Upload the clean chat-format data, create the job and register it as NAME (status running). Without a
    validation file, `val_fraction` of the data is held out as one (the same seeded split as local training)."""
    if registry.exists(name):
        old = registry.get(name)
        if old.status not in REUSABLE:
            raise AssistantError(f"A model named {name!r} already exists ({old.provider}, {old.status}). Choose "
                                 f"another --name, or remove it first with `assistant finetune remove {name}`.")
    train = _clean(data)
    if validation is not None:
        held = _clean(validation)
    else:
        train, held = split(train, val_fraction, seed or 0)
    hyperparameters = {key: value for key, value in (("n_epochs", epochs), ("batch_size", batch_size),
                                                     ("learning_rate_multiplier", lr_multiplier)) if value is not None}
    options = {key: value for key, value in (("suffix", suffix), ("seed", seed)) if value is not None}
    client = client_from_settings(settings)
    if registry.exists(name):
        registry.remove(name)  # the old run's files (a local adapter, earlier uploads) must not mix with this one
    folder = registry.folder(name)
    folder.mkdir(parents=True, exist_ok=True)
    with _translated(client, "upload"):
        training_file = _upload(client, train, folder / "train.jsonl")
        validation_file = _upload(client, held, folder / "validation.jsonl") if held else None
    with _translated(client, "create", model=model):
        job = client.fine_tuning.jobs.create(
            model=model, training_file=training_file, validation_file=validation_file,
            method={"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}, **options)
    # Saved only once the job exists: a failed upload leaves no record behind to block the name.
    return registry.save(ModelRecord(
        name=name, provider="openai", base_model=model, status=_status(job.status), job_id=job.id,
        hyperparameters={**hyperparameters, **options}, data_hash=dataset_hash(train),
        training_hashes=[prompt_hash(e.prompt) for e in train]))


def follow(settings: Settings, registry: Registry, name: str, echo: Callable[[str], None] = print,
           poll_seconds: float | None = None) -> ModelRecord:
    """Print the job's new events until it ends, then record the outcome. Ctrl-C propagates (the job keeps going)."""
    record = registry.get(name)
    if record.provider != "openai" or not record.job_id:
        raise AssistantError(f"{name!r} is not an OpenAI fine-tuning job; see `assistant finetune status {name}`.")
    client = client_from_settings(settings)
    echo(f"Following {name}: job {record.job_id} on {record.base_model}. Ctrl-C detaches; the job keeps running.")
    seen: set[str] = set()
    metrics = dict(record.metrics)
    while True:
        with _translated(client, "follow", job_id=record.job_id, name=name):
            job = client.fine_tuning.jobs.retrieve(record.job_id)
            events = list(_new_events(client, record.job_id, seen))
        for event in events:
            echo(_describe_event(event))
            metrics.update(_metrics_of(event))
        _append_history(registry.run_dir(name), events)
        status = _status(job.status)
        if status in FINAL:
            return _record_end(registry, name, job, metrics)
        if events or status != record.status:  # progress survives a detach: `finetune list` shows it
            record = registry.update(name, status=status, metrics=metrics)
        time.sleep(POLL_SECONDS if poll_seconds is None else poll_seconds)


def cancel(settings: Settings, registry: Registry, name: str) -> ModelRecord:
    record = registry.get(name)
    if record.status in FINAL:
        return record  # nothing left to stop; the record already says how it ended
    client = client_from_settings(settings)
    with _translated(client, "cancel", job_id=record.job_id, name=name):
        job = client.fine_tuning.jobs.retrieve(record.job_id)
        # It may have ended while nobody followed it; cancelling then is a 400, and its outcome is what to record.
        if _status(job.status) not in FINAL:
            job = client.fine_tuning.jobs.cancel(record.job_id)
    return _record_end(registry, name, job, record.metrics)


def _record_end(registry: Registry, name: str, job: FineTuningJob, metrics: dict) -> ModelRecord:
    status = _status(job.status)
    if job.trained_tokens:
        metrics = {**metrics, "trained_tokens": job.trained_tokens}
    error = None
    if status == "failed":
        error = job.error.message if job.error and job.error.message else "the job failed without giving a reason"
    return registry.update(name, status=status, metrics=metrics, model_id=job.fine_tuned_model, error=error)


def _clean(source: Path) -> list[Example]:
    """The examples to upload: bad lines refused (a paid job should not silently lose data), exact duplicates
    dropped."""
    examples, errors = load_examples(source)
    if errors:
        shown = "; ".join(str(e) for e in errors[:3]) + ("; …" if len(errors) > 3 else "")
        raise AssistantError(f"{source} has {len(errors)} bad line(s) ({shown}). Fix them, or write a clean file "
                             f"with `assistant finetune prepare {source} --out FILE`.")
    repeated = {line for line, _ in duplicates(examples)[0]}
    return [e for e in examples if e.line not in repeated]


def _upload(client: openai.OpenAI, examples: list[Example], path: Path) -> str:
    """Written to the model's folder first: what was uploaded stays inspectable."""
    write_chat_jsonl(examples, path)
    with path.open("rb") as handle:
        return client.files.create(file=(path.name, handle), purpose="fine-tune").id


def _new_events(client: openai.OpenAI, job_id: str, seen: set[str]) -> Iterator[FineTuningJobEvent]:
    page = client.fine_tuning.jobs.list_events(job_id, limit=EVENTS_PER_POLL)
    for event in reversed(page.data):  # oldest first
        if event.id not in seen:
            seen.add(event.id)
            yield event


def _describe_event(event: FineTuningJobEvent) -> str:
    data = event.data if isinstance(event.data, dict) else {}
    if event.type == "metrics" and "step" in data:
        text = f"step {data['step']}/{data.get('total_steps', '?')}"
        losses = [f"{label} {data[key]:.4g}" for key, label in (("train_loss", "training loss"),
                  ("valid_loss", "validation loss"), ("full_valid_loss", "full validation loss"))
                  if isinstance(data.get(key), (int, float))]
        return text + (": " + ", ".join(losses) if losses else "")
    return event.message if event.level == "info" else f"{event.level}: {event.message}"


def _metrics_of(event: FineTuningJobEvent) -> dict:
    data = event.data if isinstance(event.data, dict) else {}
    if event.type != "metrics":
        return {}
    keys = ("step", "train_loss", "valid_loss", "full_valid_loss")
    return {key: data[key] for key in keys if isinstance(data.get(key), (int, float))}


def _append_history(run_dir: Path, events: list[FineTuningJobEvent]) -> None:
    """The job's losses in history.jsonl, the file a local run writes and the app charts; each step once, also
    when a re-attached `follow` sees the same events again."""
    path = run_dir / "history.jsonl"
    known = {json.loads(line)["step"] for line in path.read_text(encoding="utf-8").splitlines()} \
        if path.is_file() else set()
    entries = []
    for event in events:
        metrics = _metrics_of(event)
        if "step" in metrics and metrics["step"] not in known:
            known.add(metrics["step"])
            entries.append({"step": metrics["step"]} | {ours: metrics[theirs] for theirs, ours in
                           (("train_loss", "train_loss"), ("valid_loss", "val_loss")) if theirs in metrics})
    if entries:
        run_dir.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.writelines(json.dumps(entry) + "\n" for entry in sorted(entries, key=lambda e: e["step"]))


def _status(job_status: str) -> str:
    """OpenAI's validating_files / queued / running are all "running" to the registry."""
    return job_status if job_status in FINAL else "running"


@contextmanager
def _translated(client: openai.OpenAI, stage: str, model: str = "", job_id: str | None = None, name: str = ""):
    try:
        yield
    except openai.OpenAIError as exc:
        raise api_error(exc, client, _explain(exc, where_of(client), stage, model, job_id, name)) from None


def _explain(exc: openai.OpenAIError, where: str, stage: str, model: str, job_id: str | None, name: str) -> str:
    """What a failure means at each stage (upload, create, follow, cancel) and what to do about it."""
    match exc:
        case openai.NotFoundError() if stage == "upload":
            return f"{where} has no files API (404): fine-tuning needs OpenAI or a server that implements it."
        case openai.NotFoundError() if stage == "create":
            return f"Model {model!r} is not available for fine-tuning at {where} (404); check --model."
        case openai.NotFoundError():
            return (f"Job {job_id} was not found at {where} (404): was it created with another key or "
                    f"organisation? `assistant finetune remove {name}` forgets it.")
        case openai.PermissionDeniedError():
            return f"{where} refused access (403): this key or project may not use fine-tuning."
        case openai.RateLimitError():
            return (f"{where} refused the request (429): {_said(exc)} Retry once the quota is raised or the rate "
                    "limit has passed.")
        case openai.BadRequestError() if stage == "upload":
            return (f"{where} rejected the file (400): {_said(exc)} Check the data with "
                    "`assistant finetune validate DATA`.")
        case openai.BadRequestError() if stage == "create":
            return (f"{where} rejected the job (400): {_said(exc)} Check --model and the hyperparameters, and the "
                    f"data with `assistant finetune validate DATA --model {model}`.")
        case openai.APIConnectionError() | openai.InternalServerError() if stage == "follow":
            return (f"{describe(exc, where)} The job may still be running: re-attach with "
                    f"`assistant finetune status {name}`.")
    return describe(exc, where)


def _said(exc: openai.APIStatusError) -> str:
    text = message_of(exc)
    return text if text.endswith((".", "!", "?")) else text + "."
