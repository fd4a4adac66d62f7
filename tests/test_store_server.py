"""Server mode: a real `chroma run` on 127.0.0.1, ingested into and searched through ASSISTANT_CHROMA_URL."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.config import load_settings
from assistant.errors import StoreError
from assistant.retrieval import Retriever
from ingest.pipeline import Ingestor
from ingest.store import KnowledgeStore
from tests.fakes import HashingEmbedder
from tests.limits import QUICK_GUARD_S

CHROMA = shutil.which("chroma", path=str(Path(sys.executable).parent))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory):
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    server = subprocess.Popen([CHROMA, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    else:
        server.kill()
        pytest.fail("chroma run did not start listening within 60 s")
    yield url
    server.terminate()
    server.wait(timeout=QUICK_GUARD_S)


def test_ingest_and_retrieve_through_a_chroma_server(chroma_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_CHROMA_URL", chroma_url)
    settings = load_settings(collection="server-kb")
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "wifi.md").write_text("# Wi-Fi\nThe 5 GHz band is faster at short range.")
    (tmp_path / "kb" / "reset.txt").write_text("Hold the reset button for ten seconds to restore factory settings.")
    embedder = HashingEmbedder()
    assert Ingestor(settings, embedder=embedder).run([tmp_path / "kb"]).count("added") == 2
    again = HashingEmbedder()
    assert Ingestor(settings, embedder=again).run([tmp_path / "kb"]).count("unchanged") == 2
    assert again.embedded == 0

    store = KnowledgeStore(settings)
    assert store.where == chroma_url and "server-kb" in store.names()
    assert not (settings.store_dir / "chroma.sqlite3").exists()  # nothing went to the embedded store
    retriever = Retriever(store.get("server-kb"), embedder, settings.home / "bm25")
    for mode in ("dense", "bm25", "hybrid"):
        assert retriever.retrieve("reset button factory settings", k=1, mode=mode)[0].source == "reset.txt"


def test_an_unreachable_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_CHROMA_URL", f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(StoreError, match="Could not reach the Chroma server"):
        KnowledgeStore(load_settings())
