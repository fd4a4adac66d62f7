"""`assistant compare EVAL --retrieval-only`: the metrics against rankings worked out by hand, and the real command
on the sample knowledge base (bundled embedder, embedded Chroma) without any answering model loaded."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.config import load_settings
from assistant.evaluation.retrieval_only import evaluate
from assistant.retrieval import Passage
from tests.limits import HANG_GUARD_S

ASSISTANT = str(Path(sys.executable).with_name("assistant"))

RANKED = {  # question → the documents the stub retriever returns, best first (a document may fill two chunks)
    "q1": ["a.md", "b.md", "c.md"],  # relevant a: rank 1
    "q2": ["b.md", "b.md", "c.md", "a.md"],  # relevant a: rank 3 among distinct documents
    "q3": ["c.md", "b.md"],  # relevant a, d: both missed
    "q4": ["d.md", "c.md", "a.md"],  # relevant a, d: ranks 1 and 3
}
SOURCES = {"q1": ["a.md"], "q2": ["a.md"], "q3": ["a.md", "d.md"], "q4": ["a.md", "d.md"]}


class StubEmbedder:
    name, dimension = "stub", 2

    def embed(self, texts):
        return np.zeros((len(texts), 2), dtype=np.float32)


class StubRetriever:
    def __init__(self) -> None:
        self.embedder, self.reranker = StubEmbedder(), None
        self.collection = type("C", (), {"name": "docs"})()
        self.modes: list[str] = []

    def retrieve(self, question, k, mode, vector=None, rerank=True):
        self.modes.append(mode)
        return [Passage("text", doc, "", 1.0, f"{doc}#{n}") for n, doc in enumerate(RANKED[question])][:k]


def _eval_file(folder: Path, sources: dict[str, list[str]]) -> Path:
    path = folder / "eval.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": "x", "sources": s}) + "\n"
                            for q, s in sources.items()))
    return path


def test_metrics_match_rankings_worked_out_by_hand(tmp_path: Path) -> None:
    retriever = StubRetriever()
    report = evaluate(load_settings(), _eval_file(tmp_path, SOURCES), ["dense", "bm25"], (1, 3), out_dir=tmp_path,
                      retriever=retriever)
    assert set(retriever.modes) == {"dense", "bm25"} and report.questions == 4
    result = report.configs[0]
    # first relevant rank: 1, 3, none, 1
    assert result.hit == {1: pytest.approx(2 / 4), 3: pytest.approx(3 / 4)}
    assert result.mrr == pytest.approx((1 + 1 / 3 + 0 + 1) / 4, abs=1e-4)
    # recall@3: q1 1/1, q2 1/1, q3 0/2, q4 2/2 (d at 1, a at 3)
    assert result.recall[3] == pytest.approx((1 + 1 + 0 + 1) / 4)
    assert result.recall[1] == pytest.approx((1 + 0 + 0 + 0.5) / 4)
    # nDCG@10, binary gains: q1 1; q2 1/log2(4); q3 0; q4 (1 + 1/log2(4)) / (1 + 1/log2(3))
    by_hand = (1 + 1 / math.log2(4) + 0 + (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))) / 4
    assert result.ndcg_10 == pytest.approx(by_hand, abs=1e-4)
    saved = json.loads(report.files["retrieval.json"].read_text())
    assert saved["configs"][0]["hit"] == {"1": 0.5, "3": 0.75}
    assert saved["per_question"]["dense"][1]["retrieved"] == ["b.md", "c.md", "a.md"]
    assert "| dense |" in report.files["retrieval.md"].read_text() and report.files["retrieval.png"].stat().st_size


def test_questions_without_sources_are_counted_not_scored_and_none_at_all_is_an_error(tmp_path: Path) -> None:
    from assistant.errors import AssistantError

    report = evaluate(load_settings(), _eval_file(tmp_path, {**SOURCES, "q5": []}), ["dense"], (1,),
                      out_dir=tmp_path, retriever=StubRetriever())
    assert report.questions == 4 and report.skipped == 1
    with pytest.raises(AssistantError, match="names its sources"):
        evaluate(load_settings(), _eval_file(tmp_path, {"q5": []}), ["dense"], (1,), out_dir=tmp_path,
                 retriever=StubRetriever())


PROBE = """
import sys
from assistant.cli.app import main
sys.argv = ["assistant", *sys.argv[1:]]
try:
    main()
finally:
    loaded = [m for m in sys.modules if m.startswith(("llama_cpp", "assistant.models.llamacpp",
                                                      "assistant.models.transformers_lm", "openai"))]
    print("GENERATOR MODULES:", sorted(loaded), file=sys.stderr)
"""


@pytest.mark.integration
def test_the_command_scores_the_sample_knowledge_base_without_an_answering_model(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    ingested = subprocess.run([ASSISTANT, "ingest", str(repo / "knowledge" / "docs")], capture_output=True,
                              text=True, timeout=HANG_GUARD_S)
    assert ingested.returncode == 0, ingested.stderr
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "-c", PROBE, "compare", str(repo / "knowledge" / "eval.jsonl"),
                             "--retrieval-only", "--json", "--ks", "1,5", "--out", str(out)],
                            capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert result.returncode == 0, result.stderr
    assert "GENERATOR MODULES: []" in result.stderr  # no answering model was even imported, let alone loaded
    report = json.loads(result.stdout)
    assert [c["name"] for c in report["configs"]] == ["dense", "bm25", "hybrid"]
    assert report["questions"] > 10 and report["embedder"] == "all-MiniLM-L6-v2"
    for config in report["configs"]:
        assert 0 <= config["hit"]["1"] <= config["hit"]["5"] <= 1 and config["latency_p50_ms"] > 0
    assert max(c["hit"]["5"] for c in report["configs"]) >= 0.5  # the sample questions are answerable
    assert {p.name for p in out.iterdir()} >= {"retrieval.json", "retrieval.csv", "retrieval.md", "retrieval.png"}
