"""Feedback on answers (thumbs, corrections), kept as JSONL under the data home and turned into training data.

Every rating or edit is appended as its own line; the latest line per answer id wins. That keeps writes atomic
enough for one user per line and keeps history for whoever wants to audit it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from assistant.examples import Example
from assistant.finetune.datasets import write_chat_jsonl


@dataclass
class Feedback:
    answer_id: str
    question: str
    answer: str
    strategy: str
    model: str
    rating: int | None = None  # 1 thumbs up, 0 thumbs down, None not rated
    edited: str | None = None  # the user's corrected answer
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def accepted_text(self) -> str | None:
        """What to train on: the correction if there is one, the answer if it was rated good, else nothing."""
        if self.edited and self.edited.strip():
            return self.edited.strip()
        return self.answer if self.rating == 1 else None


def new_answer_id() -> str:
    return uuid.uuid4().hex[:12]


def feedback_file(home: Path) -> Path:
    return home / "feedback.jsonl"


def record(home: Path, feedback: Feedback) -> None:
    path = feedback_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(feedback), ensure_ascii=False) + "\n")


def latest(home: Path) -> list[Feedback]:
    """The current state of each answer's feedback, oldest answer first."""
    path = feedback_file(home)
    found: dict[str, Feedback] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                found[json.loads(line)["answer_id"]] = Feedback(**json.loads(line))
            except (ValueError, TypeError, KeyError):
                continue  # a torn last line from a crash: skip it, keep the rest
    return list(found.values())


def export_training(home: Path, out: Path | None = None) -> tuple[Path, int]:
    """Accepted and corrected answers as a chat-format training file (for `assistant finetune train`)."""
    examples = [Example(f.question, text) for f in latest(home) if (text := f.accepted_text)]
    out = out or home / "datasets" / f"feedback-{datetime.now(UTC):%Y%m%d-%H%M%S}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_chat_jsonl(examples, out)
    return out, len(examples)
