"""`compare --concurrency N` against a real loopback server over HTTP with the official openai client: several
questions in flight (never more than N), 429s retried by the client, the same answers as a sequential run, and an
error that stops the run keeps every answer finished before it."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest

from assistant.errors import AssistantError
from assistant.evaluation.compare import compare
from assistant.models.openai_compat import OpenAIGenerator
from assistant.retrieval import Retriever
from assistant.strategies import build_strategy
from ingest.store import KnowledgeStore
from tests.openai_server import KEY, OpenAICompatibleServer, _Handler
from tests.test_compare import router_kb

OVERLAP_GUARD_S = 60  # hang guard: how long a request waits for a second one to arrive


class _BusyHandler(_Handler):
    server: BusyServer

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        if server.fail_on and server.fail_on in raw.decode():
            self._error(400, "This question is refused.", "invalid_request")
            return
        with server.state:
            first_attempt = raw not in server.seen
            server.seen.add(raw)
            server.rate_limited += first_attempt
        if first_attempt:  # what a busy server says; the client must wait and send it again
            data = json.dumps({"error": {"message": "Rate limit reached.", "type": "requests",
                                         "code": "rate_limit_exceeded"}}).encode()
            self.send_response(429)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("retry-after-ms", "5")
            self.end_headers()
            self.wfile.write(data)
            return
        with server.state:
            server.in_flight += 1
            server.most_in_flight = max(server.most_in_flight, server.in_flight)
            server.state.notify_all()
            server.state.wait_for(lambda: server.most_in_flight >= server.overlap, timeout=OVERLAP_GUARD_S)
        try:
            self.rfile = io.BytesIO(raw)
            super().do_POST()
        finally:
            with server.state:
                server.in_flight -= 1


class BusyServer(OpenAICompatibleServer):
    """The echo server, rate-limited: every request is refused with 429 at its first attempt. A request that gets
    through waits until `overlap` requests have been in flight together (or the hang guard), so a client that never
    sends two at once is seen in `most_in_flight` — counted, not timed."""

    handler = _BusyHandler

    def __init__(self, overlap: int = 1, fail_on: str = "") -> None:
        super().__init__()
        self.state = threading.Condition()
        self.seen: set[bytes] = set()
        self.overlap, self.fail_on = overlap, fail_on
        self.in_flight = self.most_in_flight = self.rate_limited = 0


@pytest.fixture
def kb(isolated_environment: Path, tmp_path: Path):
    settings, embedder, eval_file = router_kb(tmp_path)
    return settings.model_copy(update={"backend": "openai", "model": "echo-model"}), embedder, eval_file


def _run(kb, server: BusyServer, concurrency: int, out: Path):
    settings, embedder, eval_file = kb

    def factory(name: str):
        generator = OpenAIGenerator("echo-model", base_url=server.base_url, api_key=KEY, max_retries=2)
        retriever = Retriever(KnowledgeStore(settings).get(settings.collection), embedder, settings.home / "bm25")
        return build_strategy(name, settings, generator, retriever=retriever, embedder=embedder)

    return compare(settings, eval_file, ["plain", "rag"], out, factory=factory, embedder=embedder, progress=False,
                   concurrency=concurrency)


def _answers(out: Path) -> dict[str, dict[str, tuple]]:
    """strategy → question id → (text, sources): what must not depend on the order answers finish in."""
    found = {}
    for path in sorted((out / "answers").glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        found[path.stem] = {r["item"]: (r["answer"]["text"], [s["source"] for s in r["answer"]["sources"]])
                            for r in rows}
    return found


def test_concurrent_run_overlaps_requests_retries_429s_and_answers_as_the_sequential_run(kb, tmp_path: Path) -> None:
    with BusyServer() as server:
        sequential = _run(kb, server, 1, tmp_path / "sequential")
    calls = server.rate_limited  # one per model call: a rag question with no relevant passage calls none
    assert server.most_in_flight == 1 and calls >= 3 and len(server.requests) == calls, "each refused once, then sent"
    with BusyServer(overlap=2) as server:
        concurrent = _run(kb, server, 4, tmp_path / "concurrent")
    assert sequential.computed == concurrent.computed == 6
    assert server.rate_limited == len(server.requests) == calls, "every request was refused once and retried"
    assert 2 <= server.most_in_flight <= 4
    assert _answers(tmp_path / "concurrent") == _answers(tmp_path / "sequential")
    assert [(s.strategy, s.means) for s in concurrent.summaries] == \
        [(s.strategy, s.means) for s in sequential.summaries]
    with BusyServer() as server:
        again = _run(kb, server, 4, tmp_path / "concurrent")
    assert again.computed == 0 and not server.seen, "a finished run is answered from the cache"


def test_an_error_stops_the_run_and_keeps_what_finished(kb, tmp_path: Path) -> None:
    """The second question is refused (400, not retried): the run fails with the server's reason, the first
    question's answer (in flight beside it) is kept, and the next run answers only what is missing."""
    with BusyServer(fail_on="factory settings") as server, pytest.raises(AssistantError, match="refused"):
        _run(kb, server, 2, tmp_path / "out")
    kept = _answers(tmp_path / "out")
    assert kept.get("plain") and len(kept["plain"]) >= 1
    assert not any("factory settings" in text for answers in kept.values() for text, _ in answers.values())
    with BusyServer() as server:
        resumed = _run(kb, server, 2, tmp_path / "out")
    assert resumed.computed == 6 - sum(map(len, kept.values()))
    assert sum(map(len, _answers(tmp_path / "out").values())) == 6


def test_the_local_backend_answers_one_at_a_time_and_says_so(kb, tmp_path: Path) -> None:
    settings, embedder, eval_file = kb
    with BusyServer() as server:
        result = _run((settings.model_copy(update={"backend": "local"}), embedder, eval_file), server, 4,
                      tmp_path / "local")
    assert server.most_in_flight == 1 and result.computed == 6
    assert any("local backend answers one question at a time" in w for w in result.warnings)
