"""Named fine-tuned models under the data home: a local LoRA adapter or an OpenAI fine-tuned model id.

Each model is a folder `<home>/finetuned/NAME/` holding `model.json` (the record below) and, for local models,
`adapter/` (safetensors + adapter_config.json + card.json) and `run/` (checkpoints, metrics, loss curve).
The `fine-tuned:NAME` strategy resolves NAME here.

A local training run holds an OS file lock on its model's folder for as long as it runs (`training`). The lock goes
with the process, even one killed by SIGKILL or a power cut, so a record that says `running` with nobody holding
the lock is reported as `stopped` (resumable) rather than running forever, and a second run of a live name is
refused instead of writing into the same checkpoint.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from assistant.errors import AssistantError, ConfigError, ModelUnavailable, disk_full_as_error

PROVIDERS = ("local", "openai")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
HOW_TO_CREATE = (
    "Create one with `assistant finetune train knowledge/examples.jsonl --name NAME` (local LoRA) or "
    "`assistant finetune train DATA --provider openai --model gpt-4o-mini-2024-07-18 --name NAME`."
)


@dataclass
class ModelRecord:
    name: str
    provider: str  # local | openai
    base_model: str  # display name, e.g. SmolLM2-135M-Instruct or gpt-4o-mini-2024-07-18
    status: str = "created"  # created | running | succeeded | failed | cancelled | stopped
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    metrics: dict = field(default_factory=dict)
    hyperparameters: dict = field(default_factory=dict)
    data_hash: str = ""  # sha256 of the training examples: the comparison runner's leakage check uses it
    training_hashes: list[str] = field(default_factory=list)  # one per training prompt, same purpose
    base_path: str | None = None  # local: the ASSISTANT_MODEL it was trained on (None = the bundled model)
    model_id: str | None = None  # openai: the fine_tuned_model id once the job succeeded; local: a served ft:… id
    job_id: str | None = None  # openai: the fine-tuning job
    error: str | None = None
    target: str = "generator"  # what was tuned: generator (LoRA / OpenAI), embedder, reranker

    @property
    def ready(self) -> bool:
        return self.status == "succeeded"


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_settings(cls, settings) -> Registry:
        return cls(settings.home / "finetuned")

    def folder(self, name: str) -> Path:
        check_name(name)
        return self.root / name

    def adapter_dir(self, name: str) -> Path:
        return self.folder(name) / "adapter"

    def run_dir(self, name: str) -> Path:
        return self.folder(name) / "run"

    def exists(self, name: str) -> bool:
        return (self.folder(name) / "model.json").is_file()

    def get(self, name: str) -> ModelRecord:
        path = self.folder(name) / "model.json"
        if not path.is_file():
            known = ", ".join(r.name for r in self.list()) or "none yet"
            raise ModelUnavailable(f"No fine-tuned model named {name!r} (registered: {known}). {HOW_TO_CREATE}")
        return self._as_it_is(_read(path))

    def list(self) -> list[ModelRecord]:
        if not self.root.is_dir():
            return []
        records = [self._as_it_is(_read(p)) for p in sorted(self.root.glob("*/model.json"))]
        return sorted(records, key=lambda r: r.created)

    @contextlib.contextmanager
    def training(self, name: str):
        """Held while NAME trains in this process; a second run of it, anywhere on this data home, is refused."""
        lock = self._lock(name)
        try:
            lock.acquire()
        except Timeout:
            raise AssistantError(f"{name!r} is being trained by another process right now; wait for it, or stop it "
                                 f"with `assistant finetune cancel {name}` and then --resume.") from None
        try:
            yield
        finally:
            lock.release()

    def _lock(self, name: str) -> FileLock:
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(folder / ".training.lock"), timeout=0)

    def is_training(self, name: str) -> bool:
        """Whether some process holds NAME's training lock now."""
        lock = self._lock(name)
        try:
            lock.acquire()
        except Timeout:
            return True
        lock.release()
        return False

    def _as_it_is(self, record: ModelRecord) -> ModelRecord:
        """A local record left `running` by a process that is gone is `stopped`: resumable from its checkpoint."""
        if record.status != "running" or record.provider != "local" or self.is_training(record.name):
            return record
        record.status = "stopped"
        record.error = ("its training process ended without finishing (killed, or the machine stopped); continue "
                        f"from the last checkpoint with `assistant finetune train DATA --name {record.name} --resume`")
        return record

    def save(self, record: ModelRecord) -> ModelRecord:
        """Atomic: a crash mid-write leaves the previous record, never half a file."""
        folder = self.folder(record.name)
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".model-", suffix=".json", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(asdict(record), out, indent=2)
            os.replace(temp, folder / "model.json")
        except BaseException:  # a full disk, a kill signal: no half-written temp file left behind
            Path(temp).unlink(missing_ok=True)
            raise
        return record

    def update(self, name: str, **changes) -> ModelRecord:
        record = self.get(name)
        for key, value in changes.items():
            setattr(record, key, value)
        return self.save(record)

    def remove(self, name: str) -> None:
        self.get(name)  # a clear error for an unknown name
        if self.is_training(name):
            raise AssistantError(f"{name!r} is training right now; stop it first: assistant finetune cancel {name}")
        shutil.rmtree(self.folder(name))


def holds_training_lock(train):
    """For train(settings, registry, name, …): the whole run holds NAME's lock (Registry.training)."""

    @functools.wraps(train)
    def locked(settings, registry: Registry, name: str, *args, **kwargs):
        if os.environ.get("RANK", "0") != "0":  # one of torchrun's other processes: rank 0 holds it for the run
            return train(settings, registry, name, *args, **kwargs)
        with registry.training(name), disk_full_as_error(registry.root, f"training {name!r}"):
            return train(settings, registry, name, *args, **kwargs)

    return locked


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"Invalid model name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, "
                          "starting with a letter or digit).")
    return name


def _read(path: Path) -> ModelRecord:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(ModelRecord)}
        return ModelRecord(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError) as exc:
        raise ModelUnavailable(f"The fine-tuned model record {path} is unreadable ({exc}); remove that folder "
                               "or re-create the model.") from None
