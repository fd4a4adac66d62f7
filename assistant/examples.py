"""Example question/answer pairs in the formats users bring (DESIGN.md), read into one `Example` type.

JSONL lines may be {"prompt", "completion"}, {"prompt", "response"}, {"question", "answer"} or OpenAI chat
fine-tuning {"messages": [...]}; CSV files need prompt/completion (or response, or question/answer) columns.
Bad lines are reported with their line numbers and skipped; the good ones are kept.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from assistant.errors import AssistantError


@dataclass(frozen=True)
class Example:
    prompt: str
    completion: str
    system: str | None = None
    line: int = field(default=0, compare=False)  # where it was read from, for reports (0: not from a file)


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


_PAIRS = (("prompt", "completion"), ("prompt", "response"), ("question", "answer"))


def parse_record(record: object) -> Example:
    """One record → Example, or ValueError saying what is wrong with it."""
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    if "messages" in record:
        return _from_messages(record["messages"])
    for prompt_key, completion_key in _PAIRS:
        if prompt_key in record and completion_key in record:
            prompt, completion = record[prompt_key], record[completion_key]
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError(f"empty {prompt_key}")
            if not isinstance(completion, str) or not completion.strip():
                raise ValueError(f"empty {completion_key}")
            return Example(prompt.strip(), completion.strip())
    raise ValueError("missing keys: expected prompt/completion, prompt/response, question/answer or messages")


def _from_messages(messages: object) -> Example:
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    roles = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in {"system", "user", "assistant"}:
            raise ValueError(f"unknown role {message.get('role') if isinstance(message, dict) else message!r}")
        if not isinstance(message.get("content"), str):
            raise ValueError("a message without text content")
        roles.append(message["role"])
    if "assistant" not in roles:
        raise ValueError("no assistant message")
    last_answer = len(roles) - 1 - roles[::-1].index("assistant")
    users = [m for m in messages[:last_answer] if m["role"] == "user"]
    if not users or not users[-1]["content"].strip() or not messages[last_answer]["content"].strip():
        raise ValueError("no user message before the assistant's answer")
    system = next((m["content"] for m in messages if m["role"] == "system"), None)
    return Example(users[-1]["content"].strip(), messages[last_answer]["content"].strip(), system)


def read_examples(path: Path) -> tuple[list[Example], list[LineError]]:
    text = read_text(path, "examples")
    if path.suffix.lower() == ".csv":
        return _read_csv(path, text)
    examples, errors = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            examples.append(replace(parse_record(parse_json_line(line)), line=number))
        except ValueError as exc:
            errors.append(LineError(number, str(exc)))
    return examples, errors


def read_text(path: Path, what: str) -> str:
    """The file's text (UTF-8, with or without a BOM), or an AssistantError saying why not."""
    if not path.is_file():
        raise AssistantError(f"No {what} file at {path}.")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AssistantError(f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8 and try again.") from None


def parse_json_line(line: str) -> object:
    """One JSONL record; ValueError (the line's error) when it is not JSON."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    except RecursionError:  # Python's parser recurses once per level of nesting
        raise ValueError("JSON nested too deeply") from None


def csv_rows(path: Path, text: str) -> list[dict]:
    try:
        return list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:  # a NUL byte, a field over csv's size limit
        raise AssistantError(f"{path} is not a readable CSV file ({exc}).") from None


def _read_csv(path: Path, text: str) -> tuple[list[Example], list[LineError]]:
    examples, errors = [], []
    for number, row in enumerate(csv_rows(path, text), start=2):  # line 1 is the header
        try:
            record = {k.strip().lower(): v for k, v in row.items() if k}
            examples.append(replace(parse_record(record), line=number))
        except ValueError as exc:
            errors.append(LineError(number, str(exc)))
    return examples, errors
