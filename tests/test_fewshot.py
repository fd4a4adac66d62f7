"""Example files in every supported format, line-numbered errors, and MMR selection within a budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.config import load_settings
from assistant.errors import AssistantError, ConfigError
from assistant.examples import Example, read_examples
from assistant.fewshot import ExampleBank
from assistant.strategies import build_strategy
from tests.fakes import FakeGenerator, HashingEmbedder

SAMPLE = Path(__file__).resolve().parents[1] / "knowledge" / "examples.jsonl"


def test_every_jsonl_shape_and_the_errors_by_line(tmp_path: Path) -> None:
    lines = [
        {"prompt": "Reset?", "completion": "Hold the button."},
        {"prompt": "Warranty?", "response": "Two years."},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Band?"},
                      {"role": "assistant", "content": "5 GHz."}]},
        "not json",
        {"prompt": "", "completion": "x"},
        {"messages": [{"role": "robot", "content": "beep"}]},
        {"messages": [{"role": "user", "content": "only a question"}]},
        {"title": "no known keys"},
    ]
    path = tmp_path / "examples.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    examples, errors = read_examples(path)
    assert examples == [Example("Reset?", "Hold the button."), Example("Warranty?", "Two years."),
                        Example("Band?", "5 GHz.", "Be brief.")]
    assert [(e.line, e.message.split(" (")[0]) for e in errors] == [
        (4, "not JSON"), (5, "empty prompt"), (6, "unknown role 'robot'"), (7, "no assistant message"),
        (8, "missing keys: expected prompt/completion, prompt/response, question/answer or messages")]


def test_csv_examples(tmp_path: Path) -> None:
    path = tmp_path / "examples.csv"
    path.write_text('prompt,completion\nReset?,"Hold it, 10 s."\n,missing prompt\n')
    examples, errors = read_examples(path)
    assert examples == [Example("Reset?", "Hold it, 10 s.")] and [e.line for e in errors] == [3]


def test_the_sample_examples_are_all_valid() -> None:
    examples, errors = read_examples(SAMPLE)
    assert len(examples) >= 24 and errors == []


def test_selection_is_relevant_and_diverse() -> None:
    examples = [Example("How do I reset the router?", "Hold reset."),
                Example("How do I reset the router?", "Hold reset for 10 s."),  # a copy-pasted duplicate
                Example("What happens to my settings when I reset the router?", "They are erased."),
                Example("Which band is faster?", "5 GHz.")]
    bank = ExampleBank(examples, HashingEmbedder())
    picked = bank.select("How do I reset the router?", k=2)
    assert picked == [examples[0], examples[2]]  # the duplicate adds nothing, the related question does
    assert bank.select("How do I reset the router?", k=3, budget_tokens=8) == [examples[0]]  # budget respected


def test_few_shot_puts_examples_before_the_question_as_turns() -> None:
    generator = FakeGenerator(["Hold the reset button."])
    settings = load_settings(examples=SAMPLE, fewshot_k=2)
    strategy = build_strategy("few-shot", settings, generator, embedder=HashingEmbedder())
    answer = strategy.answer("I forgot my admin password, what now?")
    messages = generator.calls[0][0]
    assert [m.role for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[1].content == answer.examples[0].prompt and messages[2].content == answer.examples[0].completion
    assert answer.examples[0].prompt == "I forgot my admin password." and answer.strategy == "few-shot"


def test_few_shot_without_examples_says_how_to_give_them() -> None:
    with pytest.raises(ConfigError, match="--examples"):
        build_strategy("few-shot", load_settings(), FakeGenerator(), embedder=HashingEmbedder())
    with pytest.raises(AssistantError, match="No examples file"):
        build_strategy("few-shot", load_settings(examples="nope.jsonl"), FakeGenerator(), embedder=HashingEmbedder())
