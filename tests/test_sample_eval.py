"""The bundled evaluation set (knowledge/eval.jsonl) is valid, names real documents and does not leak examples."""

from __future__ import annotations

import json
import re
from pathlib import Path

from assistant.evaluation.evalset import read_eval
from assistant.examples import read_examples
from assistant.finetune.datasets import prompt_hash

KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"
EVAL = KNOWLEDGE / "eval.jsonl"


def _words(text: str) -> set[str]:
    return set(re.sub(r"[^\w\s]", " ", text.lower()).split())


def test_every_line_is_a_complete_question_with_real_sources() -> None:
    docs = {p.name for p in (KNOWLEDGE / "docs").iterdir()}
    records = [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(records) == 30
    for record in records:
        assert record["question"].strip() and record["answer"].strip()
        assert 8 <= len(record["answer"].split()) <= 40
        assert record["sources"] and set(record["sources"]) <= docs
    assert {s for r in records for s in r["sources"]} == docs  # every document is asked about
    items, errors = read_eval(EVAL)
    assert not errors and len(items) == 30  # no duplicate questions either


def test_no_question_leaks_from_the_example_bank() -> None:
    items, _ = read_eval(EVAL)
    examples, _ = read_examples(KNOWLEDGE / "examples.jsonl")
    assert not {i.id for i in items} & {prompt_hash(e.prompt) for e in examples}
    for item in items:
        question = _words(item.question)
        for example in examples:
            prompt = _words(example.prompt)
            assert len(question & prompt) / len(question | prompt) <= 0.6, (item.question, example.prompt)
