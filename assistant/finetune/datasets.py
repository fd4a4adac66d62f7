"""Training data: check it before spending hours (or dollars) on it, and write the one clean format we train on.

The checks follow OpenAI's data-preparation guide: per-line format errors, duplicates, examples over the length
limit, token statistics with the target model's own tokenizer, the train/validation split, and for OpenAI base
models the billed tokens and an estimated cost for the epochs the job will run.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from assistant.errors import AssistantError, ConfigError
from assistant.examples import Example, LineError, read_examples
from assistant.pricing import training_price
from assistant.prompts import SYSTEM_PROMPT

FEW_EXAMPLES = 100  # below this, fine-tuning rarely beats few-shot prompting (OpenAI suggests 50-100 to start)
NEAR_DUPLICATE = 0.9  # character-trigram Jaccard similarity of two examples' normalised text
NEAR_DUPLICATE_SCAN_LIMIT = 3000  # the pairwise scan is quadratic; above this only normalised-equal ones are found
DEFAULT_VAL_FRACTION = 0.1


@dataclass(frozen=True)
class TokenStats:
    min: int = 0
    mean: float = 0.0
    p95: int = 0
    max: int = 0
    total: int = 0

    @classmethod
    def of(cls, counts: Sequence[int]) -> TokenStats:
        if not counts:
            return cls()
        return cls(min(counts), round(float(np.mean(counts)), 1), int(np.percentile(counts, 95)), max(counts),
                   sum(counts))


@dataclass(frozen=True)
class CostEstimate:
    model: str
    epochs: int
    billed_tokens: int
    usd: float
    note: str = "an estimate from list prices; OpenAI bills with its own tokenizer"


@dataclass
class ValidationReport:
    path: str
    examples: int
    errors: list[LineError]
    exact_duplicates: list[tuple[int, int]]  # (line, line it repeats)
    near_duplicates: list[tuple[int, int, float]]  # (line, similar earlier line, similarity)
    too_long: list[tuple[int, int]]  # (line, tokens)
    tokens: TokenStats
    max_length: int
    tokenizer: str
    train: int
    validation: int
    warnings: list[str] = field(default_factory=list)
    cost: CostEstimate | None = None

    @property
    def usable(self) -> int:
        return self.examples - len(self.exact_duplicates)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["errors"] = [{"line": e.line, "message": e.message} for e in self.errors]
        return data


def dataset_hash(examples: Sequence[Example]) -> str:
    """Order-independent: the same pairs shuffled are the same data."""
    digest = hashlib.sha256()
    for item in sorted(json.dumps([e.prompt, e.completion]) for e in examples):
        digest.update(item.encode())
    return digest.hexdigest()


def prompt_hash(text: str) -> str:
    """The leakage check's key: equal for questions that differ only in case, spacing and punctuation."""
    return hashlib.sha256(_normalise(text).encode()).hexdigest()[:16]


def to_chat(example: Example) -> dict:
    """OpenAI's chat fine-tuning format, which is also what `prepare` writes. Examples without a system message get
    the one the plain strategy sends, so the model is trained on the prompts it will be served."""
    messages = [{"role": "system", "content": example.system or SYSTEM_PROMPT}]
    messages += [{"role": "user", "content": example.prompt}, {"role": "assistant", "content": example.completion}]
    return {"messages": messages}


def load_examples(path: Path) -> tuple[list[Example], list[LineError]]:
    examples, errors = read_examples(path)
    if not examples:
        detail = "; ".join(str(e) for e in errors[:3])
        raise AssistantError(f"No usable examples in {path}" + (f" ({detail})" if detail else "") +
                             ". Expected JSONL with prompt/completion, prompt/response or messages, or such a CSV.")
    return examples, errors


def split(examples: Sequence[Example], val_fraction: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """A seeded shuffle, then the first `val_fraction` held out (at least one example once there are ten)."""
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}.")
    order = list(examples)
    random.Random(seed).shuffle(order)
    held = round(len(order) * val_fraction)
    if val_fraction > 0 and held == 0 and len(order) >= 10:
        held = 1
    return order[held:], order[:held]


def duplicates(examples: Sequence[Example]) -> tuple[list[tuple[int, int]], list[tuple[int, int, float]]]:
    exact: list[tuple[int, int]] = []
    near: list[tuple[int, int, float]] = []
    first_seen: dict[tuple[str, str], int] = {}
    kept: list[tuple[Example, set[str]]] = []
    scan = len(examples) <= NEAR_DUPLICATE_SCAN_LIMIT
    for example in examples:
        key = (example.prompt, example.completion)
        if key in first_seen:
            exact.append((example.line, first_seen[key]))
            continue
        first_seen[key] = example.line
        grams = _trigrams(example.prompt + " " + example.completion)
        for other, other_grams in kept if scan else ():
            similarity = len(grams & other_grams) / max(1, len(grams | other_grams))
            if similarity >= NEAR_DUPLICATE:
                near.append((example.line, other.line, round(similarity, 3)))
                break
        kept.append((example, grams))
    return exact, near


def default_openai_epochs(train_examples: int) -> int:
    """What OpenAI picks when n_epochs is left to it (its data-preparation cookbook's rule)."""
    if train_examples * 3 < 100:
        return min(25, 100 // max(1, train_examples))
    if train_examples * 3 > 25_000:
        return max(1, 25_000 // train_examples)
    return 3


def openai_cost(model: str, token_counts: Sequence[int], epochs: int | None) -> CostEstimate:
    price = training_price(model)
    epochs = epochs or default_openai_epochs(len(token_counts))
    billed = epochs * sum(min(price.training_context, n) for n in token_counts)
    return CostEstimate(model, epochs, billed, round(billed / 1e6 * (price.training or 0), 4))


def validate(path: Path, count_tokens: Callable[[Example], int], tokenizer: str, max_length: int,
             val_fraction: float = DEFAULT_VAL_FRACTION, has_validation_file: bool = False,
             openai_model: str | None = None, epochs: int | None = None) -> ValidationReport:
    examples, errors = load_examples(path)
    exact, near = duplicates(examples)
    counts = [count_tokens(e) for e in examples]
    too_long = [(e.line, n) for e, n in zip(examples, counts) if n > max_length]
    train, held = split(examples, 0 if has_validation_file else val_fraction)
    warnings = []
    if len(examples) < FEW_EXAMPLES:
        warnings.append(f"Only {len(examples)} examples: fine-tuning usually needs at least {FEW_EXAMPLES} to beat "
                        "few-shot prompting; compare both with `assistant compare`.")
    if not held and not has_validation_file:
        warnings.append("No validation split: overfitting will go unnoticed; pass --validation FILE or more data.")
    if too_long:
        warnings.append(f"{len(too_long)} example(s) exceed {max_length} tokens and will be truncated.")
    tokens_of = {e.line: n for e, n in zip(examples, counts)}
    cost = openai_cost(openai_model, [tokens_of[e.line] for e in train], epochs) if openai_model else None
    return ValidationReport(str(path), len(examples), errors, exact, near, too_long, TokenStats.of(counts),
                            max_length, tokenizer, len(train), len(held), warnings, cost)


def prepare(path: Path, out: Path, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = 0) -> tuple[Path, Path | None, int, int]:
    """Clean chat-format JSONL: bad lines and exact duplicates dropped, then split. Returns (train file,
    validation file or None, train count, validation count)."""
    examples, _ = load_examples(path)
    exact = {line for line, _ in duplicates(examples)[0]}
    unique = [e for e in examples if e.line not in exact]
    train, held = split(unique, val_fraction, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_chat_jsonl(train, out)
    val_path = out.with_name(out.stem + ".val.jsonl") if held else None
    if val_path:
        write_chat_jsonl(held, val_path)
    return out, val_path, len(train), len(held)


def write_chat_jsonl(examples: Sequence[Example], path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for example in examples:
            out.write(json.dumps(to_chat(example), ensure_ascii=False) + "\n")


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _trigrams(text: str) -> set[str]:
    text = _normalise(text)
    return {text[i:i + 3] for i in range(max(1, len(text) - 2))}
