"""Training-data checks and preparation: what `assistant finetune validate` reports and `prepare` writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.errors import ConfigError
from assistant.examples import Example
from assistant.finetune.datasets import (
    default_openai_epochs,
    openai_cost,
    prepare,
    prompt_hash,
    split,
    to_chat,
    validate,
)
from assistant.prompts import SYSTEM_PROMPT

LINES = [
    '{"prompt": "How do I reset the router?", "completion": "Hold the reset button for 10 seconds."}',  # 1 ok
    'this is not json',  # 2
    '{"question_text": "Where?", "reply": "Here."}',  # 3 missing keys
    '{"messages": [{"role": "robot", "content": "hi"}]}',  # 4 unknown role
    '{"messages": [{"role": "user", "content": "Anyone there?"}]}',  # 5 no assistant message
    '{"prompt": "   ", "completion": "Something."}',  # 6 empty prompt
    '{"prompt": "Warranty?", "completion": ""}',  # 7 empty completion
    '{"prompt": "How do I reset the router?", "completion": "Hold the reset button for 10 seconds."}',  # 8 = line 1
    '{"prompt": "How do I reset the router ?", "completion": "Hold the reset button for 10 seconds!"}',  # 9 ~ line 1
    '{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Band?"},'
    ' {"role": "assistant", "content": "' + "5 GHz is faster. " * 30 + '"}]}',  # 10 ok, long
]


def words(example: Example) -> int:
    return len((example.prompt + " " + example.completion).split())


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(LINES) + "\n")
    return path


def test_one_of_each_problem_is_reported_on_its_line(messy: Path) -> None:
    report = validate(messy, words, "words", max_length=50)
    assert [(e.line, e.message.split(" (")[0]) for e in report.errors] == [
        (2, "not JSON"),
        (3, "missing keys: expected prompt/completion, prompt/response, question/answer or messages"),
        (4, "unknown role 'robot'"),
        (5, "no assistant message"),
        (6, "empty prompt"),
        (7, "empty completion"),
    ]
    assert report.examples == 4 and report.usable == 3
    assert report.exact_duplicates == [(8, 1)]
    assert [(line, other) for line, other, _ in report.near_duplicates] == [(9, 1)]
    assert report.too_long == [(10, 121)]  # "Band?" + 30 × 4 words
    assert (report.tokens.min, report.tokens.max, report.tokens.total) == (13, 121, 13 + 13 + 14 + 121)
    assert any("Only 4 examples" in w for w in report.warnings)


def test_the_cli_report_names_lines_and_fails_on_errors(messy: Path, model_home: Path) -> None:
    from tests.test_cli import run

    result = run("finetune", "validate", str(messy), "--json", env={"ASSISTANT_HOME": str(model_home)})
    assert result.returncode == 1  # errors found: scripts and CI can stop here
    report = json.loads(result.stdout)
    assert [e["line"] for e in report["errors"]] == [2, 3, 4, 5, 6, 7]
    assert report["exact_duplicates"] == [[8, 1]]


def test_openai_cost_estimate_uses_the_default_epochs_and_the_price_table() -> None:
    assert default_openai_epochs(30) == 3 and default_openai_epochs(10) == 10 and default_openai_epochs(20_000) == 1
    cost = openai_cost("gpt-4o-mini-2024-07-18", [1000] * 50, epochs=None)
    assert (cost.epochs, cost.billed_tokens) == (3, 150_000)
    assert cost.usd == pytest.approx(0.45)  # 150k tokens at $3.00 per million
    with pytest.raises(ConfigError, match="not a model this tool knows how to fine-tune"):
        openai_cost("my-local-model", [10], epochs=1)


def test_split_is_seeded_and_holds_out_at_least_one_of_ten() -> None:
    examples = [Example(f"q{i}", f"a{i}") for i in range(10)]
    train, held = split(examples, 0.05, seed=1)
    assert len(held) == 1 and len(train) == 9 and set(train + held) == set(examples)
    assert split(examples, 0.05, seed=1) == (train, held)
    with pytest.raises(ConfigError):
        split(examples, 1.0)


def test_prepare_writes_clean_chat_jsonl_and_a_validation_split(messy: Path, tmp_path: Path) -> None:
    train, val, n_train, n_val = prepare(messy, tmp_path / "out" / "clean.jsonl", val_fraction=0.34)
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    rows += [json.loads(line) for line in val.read_text().splitlines()] if val else []
    assert (n_train, n_val) == (2, 1) and val == tmp_path / "out" / "clean.val.jsonl"
    assert len(rows) == 3  # errors and the exact duplicate dropped
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    systems = {row["messages"][0]["content"] for row in rows}
    assert systems == {SYSTEM_PROMPT, "Be brief."}  # trained with the system prompt it will be served


def test_prompt_hash_ignores_case_spacing_and_punctuation() -> None:
    assert prompt_hash("How do I reset the router?") == prompt_hash("how do i  reset the Router")
    assert prompt_hash("How do I reset the router?") != prompt_hash("How do I reset the modem?")
    assert to_chat(Example("q", "a", "sys"))["messages"][0] == {"role": "system", "content": "sys"}
