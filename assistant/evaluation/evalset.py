"""Evaluation sets: any training-data format (a held-out split works as is), or
{"question", "answer", "sources": [...]} where `sources` (file names or document ids) enables retrieval metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from assistant.errors import AssistantError
from assistant.examples import LineError, csv_rows, parse_json_line, parse_record, read_examples, read_text
from assistant.finetune.datasets import prompt_hash


@dataclass(frozen=True)
class EvalItem:
    id: str  # stable across runs: the cache of finished answers is keyed by it
    question: str
    reference: str
    sources: tuple[str, ...] = ()


def read_eval(path: Path) -> tuple[list[EvalItem], list[LineError]]:
    text = read_text(path, "evaluation")
    if path.suffix.lower() == ".csv":
        examples, errors = read_examples(path)
        rows = csv_rows(path, text)
        items = [_item(e.prompt, e.completion, _csv_sources(rows[e.line - 2])) for e in examples]
    else:
        items, errors = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = parse_json_line(line)
                example = parse_record(record)
                sources = record.get("sources") or []
                if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
                    raise ValueError("sources must be a list of file names or document ids")
                items.append(_item(example.prompt, example.completion, sources))
            except ValueError as exc:
                errors.append(LineError(number, str(exc)))
    if not items:
        detail = "; ".join(str(e) for e in errors[:3])
        raise AssistantError(f"No usable questions in {path}" + (f" ({detail})" if detail else "") + ".")
    return _unique(items), errors


def _item(question: str, reference: str, sources) -> EvalItem:
    return EvalItem(prompt_hash(question), question, reference, tuple(sources))


def _csv_sources(row: dict) -> list[str]:
    cell = next((v for k, v in row.items() if k and k.strip().lower() == "sources"), "") or ""
    return [s.strip() for s in cell.split(";") if s.strip()]


def _unique(items: list[EvalItem]) -> list[EvalItem]:
    """A question asked twice is scored once: duplicates would double its weight in every mean."""
    seen: dict[str, EvalItem] = {}
    for item in items:
        seen.setdefault(item.id, item)
    return list(seen.values())
