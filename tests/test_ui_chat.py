"""The chat page through Streamlit's AppTest: a message in, an assistant reply out."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.openai_server import KEY, OpenAICompatibleServer

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")


@pytest.fixture(autouse=True)
def fresh_resources() -> None:
    st.cache_resource.clear()  # each test configures its own generator


def ask(question: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=300)
    app.run()
    assert not app.exception
    app.chat_input[0].set_value(question).run()
    assert not app.exception
    return app


def test_chat_streams_a_reply_and_keeps_history(openai_server: OpenAICompatibleServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"ASSISTANT_BACKEND": "openai", "ASSISTANT_MODEL": "echo-model",
                        "OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": KEY}.items():
        monkeypatch.setenv(name, value)
    app = ask("what is OSPF")
    assert [m.name for m in app.chat_message] == ["user", "assistant"]
    assert app.chat_message[1].markdown[0].value == "Echo: what is OSPF"
    assert "echo-model" in app.chat_message[1].caption[0].value
    app.chat_input[0].set_value("and BGP?").run()
    assert [m.markdown[0].value for m in app.chat_message] == ["what is OSPF", "Echo: what is OSPF", "and BGP?",
                                                               "Echo: and BGP?"]
    app.sidebar.button[0].click().run()  # new chat
    assert len(app.chat_message) == 0
    assert KEY not in str(app._tree)


@pytest.mark.integration
def test_chat_answers_with_the_bundled_model(model_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_HOME", str(model_home))
    monkeypatch.setenv("ASSISTANT_MAX_TOKENS", "16")
    app = ask("What is the capital of France?")
    assert app.chat_message[1].name == "assistant"
    assert "Paris" in app.chat_message[1].markdown[0].value


def test_bad_settings_show_an_error_instead_of_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_BACKEND", "gpt")
    app = AppTest.from_file(APP).run()
    assert not app.exception
    assert "ASSISTANT_BACKEND" in app.error[0].value


def test_a_server_failure_mid_chat_is_shown(monkeypatch: pytest.MonkeyPatch, openai_server) -> None:
    for name, value in {"ASSISTANT_BACKEND": "openai", "ASSISTANT_MODEL": "echo-model",
                        "OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": "sk-wrong"}.items():
        monkeypatch.setenv(name, value)
    app = ask("hello")
    assert "401" in app.error[0].value


def test_rag_shows_numbered_sources(monkeypatch: pytest.MonkeyPatch, openai_server: OpenAICompatibleServer,
                                    tmp_path: Path) -> None:
    from assistant.config import load_settings
    from ingest.pipeline import Ingestor
    from tests.fakes import HashingEmbedder

    for name, value in {"ASSISTANT_BACKEND": "openai", "ASSISTANT_MODEL": "echo-model",
                        "OPENAI_BASE_URL": openai_server.base_url, "OPENAI_API_KEY": KEY}.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "reset.md").write_text("# Reset\nHold the reset button for ten seconds.")
    Ingestor(load_settings(), embedder=HashingEmbedder()).run([tmp_path / "kb"])
    monkeypatch.setattr("assistant.retrieval.SentenceTransformerEmbedder.from_settings",
                        classmethod(lambda cls, settings: HashingEmbedder()))
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.sidebar.selectbox[0].select("rag").run()
    app.chat_input[0].set_value("how do I reset it with the button").run()
    assert not app.exception
    reply = app.chat_message[1]
    assert reply.markdown[0].value.startswith("Echo:")  # the echo server repeats the whole RAG prompt
    assert "Sources (1)" in reply.expander[0].label and "reset.md" in reply.expander[0].markdown[0].value
    assert "rag ·" in reply.caption[0].value
