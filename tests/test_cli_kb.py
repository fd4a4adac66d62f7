"""`assistant ingest`, `kb` and `retrieve` as a user runs them, on the sample knowledge base and the real MiniLM."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, run

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[1] / "knowledge" / "docs"


@pytest.fixture(scope="module")
def kb_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A data home with the sample knowledge base ingested once, through the CLI."""
    env = {"ASSISTANT_HOME": str(tmp_path_factory.mktemp("kb-home"))}
    result = run("ingest", str(SAMPLE), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["added"] == 5 and report["failed"] == 0 and report["embedded_chunks"] > 20
    return env


def test_reingest_is_a_no_op_with_a_summary(kb_home: dict[str, str]) -> None:
    result = run("ingest", str(SAMPLE), env=kb_home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("knowledge: 0 added, 0 updated, 5 unchanged, 0 removed, 0 failed · 0 chunks")


def test_retrieve_finds_the_relevant_passage_with_its_source(kb_home: dict[str, str]) -> None:
    result = run("retrieve", "What does an amber status light mean?", "-k", "3", "--json", env=kb_home)
    assert result.returncode == 0, result.stderr
    passages = json.loads(result.stdout)
    assert len(passages) == 3
    assert passages[0]["source"] == "troubleshooting.html"
    assert "amber" in passages[0]["text"].lower() and passages[0]["location"].startswith("Troubleshooting")
    warranty = json.loads(run("retrieve", "How long is the warranty?", "--json", env=kb_home).stdout)
    assert {"faq.csv", "warranty-policy.pdf"} & {p["source"] for p in warranty[:2]}
    assert any(p["location"].startswith(("row", "page")) for p in warranty)
    exact = json.loads(run("retrieve", "WireGuard", "--mode", "bm25", "-k", "2", "--source", "release-notes.txt",
                           "--json", env=kb_home).stdout)
    assert [p["source"] for p in exact] == ["release-notes.txt"] and "WireGuard" in exact[0]["text"]


def test_kb_list_and_stats(kb_home: dict[str, str]) -> None:
    listing = run("kb", "list", env=kb_home)
    assert listing.returncode == 0
    assert "knowledge  (5 documents" in listing.stdout and "warranty-policy.pdf" in listing.stdout
    stats = json.loads(run("kb", "stats", "--json", env=kb_home).stdout)
    assert stats["embedder"] == "all-MiniLM-L6-v2" and stats["dimension"] == 384 and stats["documents"] == 5


def test_failed_files_are_named_and_the_exit_code_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SAMPLE / "release-notes.txt", folder)
    (folder / "scan.pdf").write_bytes(b"%PDF-1.7\n garbage without a trailer")
    result = run("ingest", str(folder), env={"ASSISTANT_HOME": str(tmp_path / "home")})
    assert result.returncode == 1
    assert "1 added" in result.stdout and "1 failed" in result.stdout
    assert "FAILED scan.pdf: corrupt" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_changed_embedder_is_refused_in_one_line(kb_home: dict[str, str], tmp_path: Path) -> None:
    env = {**kb_home, "ASSISTANT_EMBEDDER": str(tmp_path / "other-embedder")}
    assert_one_line_error(run("retrieve", "anything", env=env), "assistant kb reindex")


def test_missing_paths_and_collections_are_one_line(kb_home: dict[str, str]) -> None:
    assert_one_line_error(run("ingest", "no/such/folder", env=kb_home), "No such file or folder")
    assert_one_line_error(run("retrieve", "x", "--collection", "nope", env=kb_home), "No knowledge base named 'nope'")


def test_rag_answers_from_the_knowledge_base_and_cites_it(model_home: Path) -> None:
    env = {"ASSISTANT_HOME": str(model_home), "ASSISTANT_COLLECTION": "sample", "ASSISTANT_MAX_TOKENS": "48"}
    assert run("ingest", str(SAMPLE), env=env).returncode == 0
    result = run("ask", "How long is the warranty on the Nimbus R7?", "--strategy", "rag", "--json", env=env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["strategy"] == "rag" and not answer["declined"]
    assert answer["sources"][0]["source"] in {"faq.csv", "warranty-policy.pdf"}
    assert re.search(r"\b(two|2)[ -]years?\b", answer["text"].lower())  # "two years", "2 years", "2-year"
    plain = run("ask", "What is the capital of France?", "--strategy", "rag", env=env)
    assert plain.returncode == 0 and plain.stdout.startswith("I found nothing relevant in the knowledge base")
