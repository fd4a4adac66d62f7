"""Tuning retrieval on the user's examples, on the real bundled MiniLM: the embedder and a reranker learn what the
base model cannot know, and a knowledge base re-embedded with the tuned embedder is guarded like any other."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.errors import ConfigError, StoreError
from assistant.finetune.registry import Registry

pytestmark = pytest.mark.integration

# A support team's jargon: users describe a symptom in their words, the answers name it in the team's. The bundled
# model matches the device by its name but cannot know which jargon means which symptom; every symptom appears with
# other devices in the training half, so the association is learnable and the held-out half measures it.
SYMPTOMS = {
    "keeps making a clicking noise": "actuator fault AF-2",
    "smells like something is burning": "thermal event TE-9",
    "shows nothing on the screen": "panel blackout PB-1",
    "will not turn on at all": "power rail failure PR-4",
    "drops the connection every few minutes": "link flap LF-7",
    "is much slower than it used to be": "throughput degradation TD-3",
    "gets very hot when charging": "charge thermal runaway CT-5",
    "beeps three times when started": "boot self-test failure BS-8",
}
DEVICES = ["Nimbus R7 router", "Aurora mesh node", "Zephyr thermostat", "Orion camera", "Helix speaker",
           "Vega doorbell"]


def faq(folder: Path) -> tuple[Path, Path]:
    """(training file, held-out file) of the jargon FAQ: a seeded half of the device/symptom pairs each."""
    pairs = [(f"My {device} {symptom}. What is wrong?",
              f"The {device} reports {jargon}: {'reset it' if i % 2 else 'send it in for repair'}.")
             for i, (device, (symptom, jargon)) in enumerate((d, s) for d in DEVICES for s in SYMPTOMS.items())]
    random.Random(7).shuffle(pairs)
    train, held = pairs[:32], pairs[32:]
    for name, rows in (("train.jsonl", train), ("held.jsonl", held)):
        (folder / name).write_text("".join(json.dumps({"prompt": q, "completion": a}) + "\n" for q, a in rows))
    return folder / "train.jsonl", folder / "held.jsonl"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory):
    from assistant.finetune.embedder import EmbedderTrainConfig, train_embedder

    home = tmp_path_factory.mktemp("tuning-home")
    train, held = faq(home)
    settings = Settings(home=home)
    registry = Registry.from_settings(settings)
    config = EmbedderTrainConfig.create(epochs=4, batch_size=16, learning_rate=1e-4, patience=0, seed=1)
    record = train_embedder(settings, registry, "jargon", train, config, validation=held, progress=False)
    return settings, registry, record, train, held


def test_tuning_the_embedder_raises_held_out_retrieval(tuned) -> None:
    settings, registry, record, _, _ = tuned
    assert record.status == "succeeded" and record.target == "embedder"
    before, after = record.metrics["before"], record.metrics["after"]
    assert after["hit@5"] > before["hit@5"] and after["mrr@10"] > before["mrr@10"]
    folder = registry.folder("jargon") / "embedder"
    assert (folder / "model.safetensors").is_file() and not list(folder.rglob("*.bin"))
    card = json.loads((folder / "card.json").read_text())
    assert card["base_model"] == "all-MiniLM-L6-v2" and card["metrics"]["after"] == after
    assert card["data_hash"] == record.data_hash


def test_a_knowledge_base_reindexed_with_it_is_searched_with_it_and_guarded(tuned, tmp_path: Path) -> None:
    from assistant.retrieval import Retriever
    from ingest.kb import reindex
    from ingest.pipeline import Ingestor

    settings, _, _, _, held = tuned
    docs = tmp_path / "docs"
    docs.mkdir()
    for index, line in enumerate(held.read_text().splitlines()):
        (docs / f"answer-{index:02d}.txt").write_text(json.loads(line)["completion"])
    base = settings.model_copy(update={"collection": "jargon-kb"})
    Ingestor(base).run([docs], "jargon-kb")
    tuned_settings = base.model_copy(update={"embedder": "jargon"})
    assert reindex(tuned_settings, "jargon-kb") == len(held.read_text().splitlines())
    with pytest.raises(StoreError, match="was embedded with jargon"):
        Retriever.from_settings(base)  # the bundled embedder would search tuned vectors: refused
    retriever = Retriever.from_settings(tuned_settings)
    assert retriever.embedder.name == "jargon" and retriever.collection.embedder == "jargon"
    question, answer = (lambda row: (row["prompt"], row["completion"]))(json.loads(held.read_text().splitlines()[0]))
    assert retriever.retrieve(question, k=1, mode="dense")[0].text.strip() == answer


def test_a_reranker_trained_from_the_examples_reranks_the_top_n_and_reports_its_time(tuned, tmp_path) -> None:
    from assistant.finetune.reranker import RerankerTrainConfig, train_reranker
    from assistant.rerank import Reranker

    settings, registry, _, train, held = tuned
    config = RerankerTrainConfig.create(epochs=2, batch_size=16, negatives=3, patience=0, seed=1)
    record = train_reranker(settings, registry, "jargon-rerank", train, config, validation=held, progress=False)
    assert record.status == "succeeded" and record.target == "reranker"
    assert set(record.metrics["with_reranker"]) == {"hit@1", "hit@5", "mrr@10"}
    assert "embedder_alone" in record.metrics  # the card says whether it helps: the number, not a promise

    reranker = Reranker.from_settings(settings.model_copy(update={"reranker": "jargon-rerank"}))
    scores = reranker.scores("My Orion camera will not turn on at all. What is wrong?",
                             ["The Orion camera reports power rail failure PR-4: reset it.", "Bananas are yellow."])
    assert len(scores) == 2 and reranker.last_ms > 0


def test_the_retriever_reranks_exactly_the_top_n(tmp_path: Path) -> None:
    """A reranker that prefers the shortest passage: it may reorder only what fusion put in the top N."""
    from assistant.retrieval import Retriever
    from ingest.pipeline import Ingestor
    from tests.fakes import HashingEmbedder

    docs = tmp_path / "docs"
    docs.mkdir()
    for index in range(12):
        (docs / f"d{index:02d}.txt").write_text("router " * (index + 1) + f"note {index}")
    settings = Settings(home=tmp_path / "home", collection="rerank-kb")
    embedder = HashingEmbedder()
    Ingestor(settings, embedder=embedder).run([docs], "rerank-kb")

    class Shortest:
        name, last_ms, seen = "shortest", 0.0, []

        def scores(self, query, texts):
            self.seen.append(len(texts))
            self.last_ms = 1.5
            return [-len(t) for t in texts]

    from ingest.store import KnowledgeStore

    retriever = Retriever(KnowledgeStore(settings).get("rerank-kb"), embedder, settings.home / "bm25",
                          reranker=Shortest(), rerank_top_n=5)
    fused = retriever.retrieve("router", k=5, mode="bm25", rerank=False)
    reranked = retriever.retrieve("router", k=3, mode="bm25")
    assert Shortest.seen == [5] and retriever.last_rerank_ms == 1.5
    assert {p.chunk_id for p in reranked} <= {p.chunk_id for p in fused}
    assert [len(p.text) for p in reranked] == sorted(len(p.text) for p in fused)[:3]


def test_tuned_models_are_not_answering_models(tuned) -> None:
    from assistant.strategies import available_strategies, generator_for

    settings, _, _, _, _ = tuned
    assert "fine-tuned:jargon" not in available_strategies(settings)
    with pytest.raises(ConfigError, match="tuned embedder.*ASSISTANT_EMBEDDER=jargon"):
        generator_for("fine-tuned:jargon", settings)


def test_retrieval_only_scores_a_tuned_embedder_beside_the_knowledge_bases_own(tuned, tmp_path: Path) -> None:
    from assistant.evaluation.retrieval_only import evaluate
    from ingest.pipeline import Ingestor

    settings, _, _, _, held = tuned
    docs, rows = tmp_path / "docs", [json.loads(line) for line in held.read_text().splitlines()]
    docs.mkdir()
    for index, row in enumerate(rows):
        (docs / f"answer-{index:02d}.txt").write_text(row["completion"])
    base = settings.model_copy(update={"collection": "jargon-eval"})
    Ingestor(base).run([docs], "jargon-eval")
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("".join(json.dumps({"question": r["prompt"], "answer": r["completion"],
                                             "sources": [f"answer-{i:02d}.txt"]}) + "\n" for i, r in enumerate(rows)))
    report = evaluate(base, eval_file, ["dense", "hybrid"], (1, 5), embedders=("jargon",), out_dir=tmp_path / "out")
    by_name = {c.name: c for c in report.configs}
    assert list(by_name) == ["dense", "hybrid", "dense@jargon", "hybrid@jargon"]
    assert by_name["dense@jargon"].hit[1] > by_name["dense"].hit[1]
    assert by_name["dense@jargon"].mrr > by_name["dense"].mrr
    from ingest.store import KnowledgeStore

    assert KnowledgeStore(base).get("jargon-eval").embedder == "all-MiniLM-L6-v2"  # the knowledge base untouched
