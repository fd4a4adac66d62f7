"""Fine-tuning jobs as OpenAI describes them, run by the local LoRA trainer.

A job is a record `<home>/fine_tuning/<job id>.json` (what was asked, and the states the server decided: cancelled,
failed validation) plus the background job (`assistant/jobs.py`) that runs `assistant finetune train` once the job
leaves the queue, and the model it registers. Everything else — running, succeeded, failed, the events, trained
tokens — is read from those on each request, so a restarted server (or another one on the same data home) sees
the same jobs, and a training run outlives the server that started it.

Statuses: validating_files → queued → running → succeeded | failed | cancelled. One training runs at a time.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant import jobs
from assistant.config import Settings
from assistant.finetune.registry import Registry
from assistant.server.errors import APIError, not_found

FINAL = {"succeeded", "failed", "cancelled"}
DEFAULTS = {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.0}  # "auto", as the trainer's defaults
BASE_LEARNING_RATE = 1e-3  # the local trainer's default; OpenAI's multiplier scales it


@dataclass
class JobRecord:
    id: str
    model: str  # the base model id
    base_path: str | None  # what ASSISTANT_MODEL was for that base (None = bundled)
    training_file: str
    validation_file: str | None
    hyperparameters: dict
    suffix: str | None
    seed: int
    created_at: int = field(default_factory=lambda: int(time.time()))
    created_ns: int = field(default_factory=time.time_ns)  # the order: two jobs are often created in one second
    status: str = "queued"  # only the states the server itself decides; the rest is read from the run
    background_job: str | None = None
    started_at: int | None = None
    finished_at: int | None = None
    error: dict | None = None

    @property
    def name(self) -> str:
        """The registry name the model is trained under (what `assistant finetune list` shows)."""
        return self.id

    @property
    def fine_tuned_model_id(self) -> str:
        return f"ft:{self.model}:{self.suffix or 'ragtune'}:{self.id}"


class JobStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.home / "fine_tuning"
        self.registry = Registry.from_settings(settings)

    def create(self, **fields) -> JobRecord:
        record = JobRecord(id=f"ftjob-{secrets.token_hex(12)}", **fields)
        self.save(record)
        return record

    def get(self, job_id: str) -> JobRecord:
        path = self.root / f"{job_id}.json"
        if not job_id.startswith("ftjob-") or not job_id[6:].isalnum() or not path.is_file():
            raise not_found("fine-tuning job", job_id)
        return JobRecord(**json.loads(path.read_text()))

    def list(self) -> list[JobRecord]:
        records = [JobRecord(**_with_order(json.loads(p.read_text()))) for p in self.root.glob("ftjob-*.json")]
        return sorted(records, key=lambda r: r.created_ns, reverse=True)

    def save(self, record: JobRecord) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".job-", dir=self.root)
        with os.fdopen(handle, "w") as out:
            json.dump(asdict(record), out)
        os.replace(temp, self.root / f"{record.id}.json")  # atomic: a reader sees the old record or the new

    # -- what the job is doing, read from the run -------------------------------------------------------------
    def status(self, record: JobRecord) -> str:
        if record.status in FINAL or record.background_job is None:
            return record.status
        job = jobs.get(self.settings, record.background_job)
        if job.running:
            return "running"
        model = self._model(record)
        return "succeeded" if model is not None and model.ready else "failed"

    def describe(self, record: JobRecord) -> dict:
        """The job as OpenAI's FineTuningJob object."""
        status = self.status(record)
        model = self._model(record)
        metrics = model.metrics if model is not None else {}
        error = record.error
        if status == "failed" and error is None:
            error = {"code": "training_failed", "param": None,
                     "message": (model.error if model is not None and model.error else self._log_tail(record))}
        finished = record.finished_at or (self._ended_at(record) if status in FINAL else None)
        hyper = record.hyperparameters
        return {
            "id": record.id, "object": "fine_tuning.job", "created_at": record.created_at, "error": error,
            "fine_tuned_model": record.fine_tuned_model_id if status == "succeeded" else None,
            "finished_at": finished, "hyperparameters": hyper, "model": record.model,
            "organization_id": "org-ragtune", "result_files": [], "seed": record.seed, "status": status,
            "trained_tokens": _trained_tokens(model) if status == "succeeded" else None,
            "training_file": record.training_file, "validation_file": record.validation_file,
            "estimated_finish": None, "integrations": [], "suffix": record.suffix, "metadata": None,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}},
            "user_provided_suffix": record.suffix, "metrics": metrics or None,
        }

    def events(self, record: JobRecord) -> list[dict]:
        """Oldest first, worded as OpenAI words them (the step lines are what its dashboard charts)."""
        found = [self._event(record, 0, record.created_at, f"Validating training file: {record.training_file}"),
                 self._event(record, 1, record.created_at, "Files validated, moving job to queued state")]
        if record.started_at is not None:
            found.append(self._event(record, 2, record.started_at, "Fine-tuning job started"))
        total = _total_steps(record, self._model(record))
        for index, entry in enumerate(self._history(record), start=3):
            step = entry.get("step", 0)
            if "train_loss" in entry:
                message = f"Step {step}/{total}: training loss={entry['train_loss']:.4f}"
                data = {"step": step, "total_steps": total, "train_loss": entry["train_loss"]}
            else:
                message = f"Step {step}/{total}: validation loss={entry['val_loss']:.4f}"
                data = {"step": step, "total_steps": total, "valid_loss": entry["val_loss"]}
            found.append(self._event(record, index, entry.get("time", record.started_at or record.created_at),
                                     message, data=data, kind="metrics"))
        status = self.status(record)
        ended = record.finished_at or self._ended_at(record) or int(time.time())
        if status == "succeeded":
            found.append(self._event(record, 100_000, ended, f"New fine-tuned model created: "
                                     f"{record.fine_tuned_model_id}"))
            found.append(self._event(record, 100_001, ended, "The job has successfully completed"))
        elif status == "cancelled":
            found.append(self._event(record, 100_000, ended, "Job cancelled"))
        elif status == "failed":
            message = self.describe(record)["error"]["message"]
            found.append(self._event(record, 100_000, ended, f"Job failed: {message}", level="error"))
        return found

    def checkpoints(self, record: JobRecord) -> list[dict]:
        """The resumable checkpoint the trainer keeps (its latest), OpenAI-shaped."""
        state_file = self.registry.run_dir(record.name) / "checkpoint" / "state.json"
        if not state_file.is_file():
            return []
        step = json.loads(state_file.read_text()).get("step", 0)
        losses = [h for h in self._history(record) if h.get("step", 0) <= step]
        train = next((h["train_loss"] for h in reversed(losses) if "train_loss" in h), None)
        valid = next((h["val_loss"] for h in reversed(losses) if "val_loss" in h), None)
        return [{"id": f"ftckpt-{record.id[6:]}-{step}", "object": "fine_tuning.job.checkpoint",
                 "created_at": int(state_file.stat().st_mtime), "fine_tuning_job_id": record.id,
                 "fine_tuned_model_checkpoint": f"{record.fine_tuned_model_id}:ckpt-step-{step}",
                 "step_number": step, "metrics": {"step": step, "train_loss": train, "valid_loss": valid}}]

    # -- helpers -----------------------------------------------------------------------------------------------
    def _model(self, record: JobRecord):
        return self.registry.get(record.name) if self.registry.exists(record.name) else None

    def _history(self, record: JobRecord) -> list[dict]:
        path = self.registry.run_dir(record.name) / "history.jsonl"
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip().startswith("{") and line.strip().endswith("}")]

    def _ended_at(self, record: JobRecord) -> int | None:
        if record.background_job is None:
            return None
        ended = jobs.get(self.settings, record.background_job).ended
        from datetime import datetime

        return int(datetime.fromisoformat(ended).timestamp()) if ended else None

    def _log_tail(self, record: JobRecord) -> str:
        if record.background_job is None:
            return "the job did not start"
        tail = jobs.get(self.settings, record.background_job).log_tail(3).splitlines()
        return tail[-1] if tail else "the trainer ended without a message"

    @staticmethod
    def _event(record: JobRecord, index: int, created: int | float | None, message: str, data: dict | None = None,
               kind: str = "message", level: str = "info") -> dict:
        return {"id": f"ftevent-{record.id[6:]}-{index}", "object": "fine_tuning.job.event",
                "created_at": int(created or record.created_at), "level": level, "message": message,
                "data": data or {}, "type": kind}


def _trained_tokens(model) -> int | None:
    metrics = model.metrics if model is not None else {}
    if "tokens_per_s" in metrics and "seconds" in metrics:
        return int(metrics["tokens_per_s"] * metrics["seconds"])
    return None


def _total_steps(record: JobRecord, model) -> int | str:
    return (model.metrics or {}).get("total_steps", "?") if model is not None else "?"


def resolve_hyperparameters(given: dict) -> dict:
    """OpenAI's hyperparameters with each "auto" (or absence) made concrete, validated as the trainer would."""
    resolved = {key: (default if given.get(key) in (None, "auto") else given[key]) for key, default in DEFAULTS.items()}
    checks = {"n_epochs": (int, 1, 100), "batch_size": (int, 1, 512), "learning_rate_multiplier": (float, 1e-4, 100)}
    for key, (kind, low, high) in checks.items():
        value = resolved[key]
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high \
                or (kind is int and int(value) != value):
            raise APIError(400, f"hyperparameters.{key} must be 'auto' or a {kind.__name__} from {low} to {high}.",
                           param=f"hyperparameters.{key}")
        resolved[key] = kind(value)
    return resolved


def train_argv(settings: Settings, record: JobRecord, data: Path, validation: Path | None) -> list[str]:
    """The `assistant finetune train` command line the background job runs."""
    hyper = record.hyperparameters
    argv = ["finetune", "train", str(data), "--name", record.name, "--model-id", record.fine_tuned_model_id,
            "--epochs", str(hyper["n_epochs"]), "--batch-size", str(hyper["batch_size"]),
            "--lr", repr(BASE_LEARNING_RATE * hyper["learning_rate_multiplier"]), "--seed", str(record.seed)]
    if record.base_path is not None:
        argv += ["--model", record.base_path]
    if validation is not None:
        argv += ["--validation", str(validation)]
    return argv


def _with_order(fields: dict) -> dict:
    """Records written before ``created_ns`` existed sort by their second."""
    fields.setdefault("created_ns", fields.get("created_at", 0) * 1_000_000_000)
    return fields
