"""The comparison runner with fake generators: each (question, strategy) answered once, resumable, incremental,
leakage warned about; and once on the real bundled model through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.config import Settings, load_settings
from assistant.evaluation.compare import compare
from assistant.retrieval import Retriever
from assistant.strategies import build_strategy
from ingest.pipeline import Ingestor
from ingest.store import KnowledgeStore
from tests.fakes import FakeGenerator, HashingEmbedder

QUESTIONS = [
    ("How long is the router warranty?", "The router warranty lasts two years from purchase.", "warranty.md"),
    ("How do I restore factory settings?", "Hold the reset button for ten seconds.", "reset.txt"),
    ("Which port takes the modem cable?", "The yellow WAN port takes the modem cable.", "ports.txt"),
]


class Answers(FakeGenerator):
    """Knows the reference answer only when the knowledge base put it in the prompt: RAG should win."""

    def _stream(self, messages, options):
        prompt = "\n".join(m.content for m in messages)
        known = sorted((prompt.index(reference), reference) for _, reference, _ in QUESTIONS if reference in prompt)
        self.replies = [known[0][1] + " [1]" if known else "I am not sure, sorry."]  # from the top source
        yield from super()._stream(messages, options)


def router_kb(tmp_path: Path) -> tuple[Settings, HashingEmbedder, Path]:
    """(settings, embedder, eval file): one document per question ingested, and the questions as an eval set."""
    kb = tmp_path / "kb"
    kb.mkdir()
    for _, reference, name in QUESTIONS:
        (kb / name).write_text(reference + "\n")
    settings = load_settings()
    embedder = HashingEmbedder()
    Ingestor(settings, embedder=embedder).run([kb])
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("".join(json.dumps({"question": q, "answer": a, "sources": [s]}) + "\n"
                                 for q, a, s in QUESTIONS))
    return settings, embedder, eval_file


@pytest.fixture
def setup(isolated_environment: Path, tmp_path: Path):
    settings, embedder, eval_file = router_kb(tmp_path)
    examples = tmp_path / "examples.jsonl"
    examples.write_text(json.dumps({"prompt": "Is the router waterproof?", "completion": "No, keep it dry."}) + "\n")
    built: list[str] = []

    def factory(name: str):
        built.append(name)
        generator = Answers()
        retriever = Retriever(KnowledgeStore(settings).get(settings.collection), embedder, settings.home / "bm25")
        return build_strategy(name, settings, generator, examples=examples, retriever=retriever, embedder=embedder)

    def run(strategies: list[str], **changed_settings):
        return compare(settings.model_copy(update=changed_settings), eval_file, strategies, tmp_path / "out",
                       factory=factory, embedder=embedder, examples=examples, progress=False)

    return run, built, tmp_path


def test_every_pair_is_answered_once_and_the_report_is_written(setup) -> None:
    run, built, tmp_path = setup
    result = run(["plain", "rag"])
    assert result.computed == 6 and built == ["plain", "rag"]
    files = {name: path.is_file() for name, path in result.files.items()}
    assert files == {n: True for n in ("answers.jsonl", "summary.csv", "summary.json", "report.md", "comparison.png")}
    rows = [json.loads(line) for line in result.files["answers.jsonl"].read_text().splitlines()]
    assert [r["question"] for r in rows] == [q for q, _, _ in QUESTIONS]
    assert all(set(r["answers"]) == {"plain", "rag"} for r in rows)
    by_name = {s.strategy: s for s in result.summaries}
    assert by_name["rag"].means["token_f1"] > by_name["plain"].means["token_f1"]
    # "restore factory settings" shares no word with "Hold the reset button…": the hashing embedder finds nothing,
    # so rag declines that one, and it counts as a retrieval miss.
    assert by_name["rag"].declined_rate == pytest.approx(1 / 3)
    assert by_name["rag"].means["hit_at_k"] == pytest.approx(2 / 3) and by_name["plain"].means["hit_at_k"] is None
    assert "token_f1" in by_name["rag"].vs_plain
    report = result.files["report.md"].read_text()
    assert "| rag |" in report and "## Recommendation" in report and "rag answers closest" in report
    # each rag answer records how its sources were found; plain's none
    assert {r["answers"]["rag"]["retrieval"]["mode"] for r in rows} == {"hybrid"}
    assert rows[0]["answers"]["rag"]["retrieval"]["reranker"] is None
    assert rows[0]["answers"]["plain"]["retrieval"] is None
    assert by_name["rag"].retrieval["embedder"] == "all-MiniLM-L6-v2" and by_name["plain"].retrieval is None
    assert "- rag: hybrid search, embedder all-MiniLM-L6-v2, no reranker" in report

    again = run(["plain", "rag"])
    assert again.computed == 0 and built == ["plain", "rag"]  # everything came from the cache
    dense = run(["plain", "rag"], retrieval_mode="dense")
    assert dense.computed == 3 and built == ["plain", "rag", "rag"]  # another retrieval configuration: answered anew


def test_an_interrupted_run_resumes_without_recomputing(setup) -> None:
    run, built, tmp_path = setup
    answered = []
    original = Answers._stream

    def interrupt_on_the_third(self, messages, options):
        if len(answered) == 2:
            raise KeyboardInterrupt
        answered.append(1)
        yield from original(self, messages, options)

    Answers._stream = interrupt_on_the_third
    try:
        with pytest.raises(KeyboardInterrupt):
            run(["plain"])
    finally:
        Answers._stream = original
    result = run(["plain"])
    assert result.computed == 1  # only the question the interruption cut off


def test_adding_a_strategy_runs_only_that_one_and_changed_settings_invalidate(setup) -> None:
    run, built, tmp_path = setup
    run(["plain"])
    result = run(["plain", "few-shot"])
    assert result.computed == 3 and built == ["plain", "few-shot"]
    assert run(["plain", "few-shot"], max_tokens=99).computed == 6  # other answers: nothing stale is reused
    assert run(["plain", "few-shot"]).computed == 0  # and the earlier ones are still there


def test_questions_seen_in_the_example_bank_are_flagged(setup) -> None:
    run, built, tmp_path = setup
    examples = tmp_path / "examples.jsonl"
    examples.write_text(json.dumps({"prompt": "how long is the router warranty", "completion": "Two years."}) + "\n")
    result = run(["plain", "few-shot"])
    assert any("appear in the example bank" in w and "warranty" in w for w in result.warnings)
    assert "## Warnings" in result.files["report.md"].read_text()


@pytest.mark.integration
def test_compare_on_the_real_model_writes_the_report_and_rag_beats_plain(model_home: Path, tmp_path: Path) -> None:
    from tests.test_cli import run as cli
    from tests.test_cli_kb import SAMPLE

    env = {"ASSISTANT_HOME": str(model_home), "ASSISTANT_COLLECTION": "sample", "ASSISTANT_MAX_TOKENS": "64"}
    assert cli("ingest", str(SAMPLE), env=env).returncode == 0
    eval_file, out = SAMPLE.parent / "eval.jsonl", tmp_path / "c"
    result = cli("compare", str(eval_file), "--strategies", "plain,rag", "--limit", "5", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert "token F1" in result.stdout and "10 new answer(s)" in result.stdout
    for name in ("answers.jsonl", "summary.csv", "summary.json", "report.md", "comparison.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "summary.json").read_text())["questions"] == 5

    # Nearly every question is answerable only from the knowledge base. Five are too few to tell a 135M model's
    # strategies apart, so the claim is checked on all 30 (the first five come from the cache).
    result = cli("compare", str(eval_file), "--strategies", "plain,rag", "--out", str(out), "--json", env=env)
    assert result.returncode == 0, result.stderr
    by_name = {s["strategy"]: s for s in json.loads(result.stdout)["strategies"]}
    assert by_name["rag"]["means"]["token_f1"] > by_name["plain"]["means"]["token_f1"]
    assert by_name["rag"]["means"]["hit_at_k"] > 0.8
