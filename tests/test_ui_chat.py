"""The chat page through Streamlit's AppTest: a message in, an assistant reply out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.limits import HANG_GUARD_S, QUICK_GUARD_S
from tests.openai_server import KEY, OpenAICompatibleServer

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")


@pytest.fixture(autouse=True)
def fresh_resources() -> None:
    st.cache_resource.clear()  # each test configures its own generator


def ask(question: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=HANG_GUARD_S)
    app.run()
    assert not app.exception
    app.chat_input[0].set_value(question).run()
    assert not app.exception
    return app


def test_chat_streams_a_reply_and_keeps_history(openai_server: OpenAICompatibleServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    use_echo_server(monkeypatch, openai_server)
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

    use_echo_server(monkeypatch, openai_server)
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "reset.md").write_text("# Reset\nHold the reset button for ten seconds.")
    Ingestor(load_settings(), embedder=HashingEmbedder()).run([tmp_path / "kb"])
    monkeypatch.setattr("assistant.retrieval.SentenceTransformerEmbedder.from_settings",
                        classmethod(lambda cls, settings: HashingEmbedder()))
    app = AppTest.from_file(APP, default_timeout=HANG_GUARD_S).run()
    app.sidebar.selectbox[0].select("rag").run()
    app.chat_input[0].set_value("how do I reset it with the button").run()
    assert not app.exception
    reply = app.chat_message[1]
    assert reply.markdown[0].value.startswith("Echo:")  # the echo server repeats the whole RAG prompt
    assert "Sources (1)" in reply.expander[0].label and "reset.md" in reply.expander[0].markdown[0].value
    assert "rag ·" in reply.caption[0].value


def use_echo_server(monkeypatch: pytest.MonkeyPatch, server: OpenAICompatibleServer) -> None:
    for name, value in {"ASSISTANT_BACKEND": "openai", "ASSISTANT_MODEL": "echo-model",
                        "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": KEY}.items():
        monkeypatch.setenv(name, value)


def test_feedback_and_corrections_are_saved_and_become_training_data(
        monkeypatch: pytest.MonkeyPatch, openai_server: OpenAICompatibleServer, isolated_environment: Path) -> None:
    from assistant import feedback

    use_echo_server(monkeypatch, openai_server)
    app = ask("how do I reset it")
    app.feedback[0].set_value(1).run()  # thumbs up
    assert not app.exception
    app.chat_input[0].set_value("and the warranty?").run()
    app.text_area[1].set_value("Two years from purchase.").run()
    answer_id = app.text_area[1].key.removeprefix("edit-")
    app.button(key=f"save-{answer_id}").click().run()
    assert not app.exception
    saved = {f.question: f for f in feedback.latest(isolated_environment)}
    assert saved["how do I reset it"].rating == 1 and saved["how do I reset it"].answer == "Echo: how do I reset it"
    assert saved["and the warranty?"].edited == "Two years from purchase."
    next(b for b in app.sidebar.button if b.label == "Training file from feedback").click().run()
    assert "2 examples written" in app.success[0].value
    written = next((isolated_environment / "datasets").glob("feedback-*.jsonl")).read_text().splitlines()
    completions = [json.loads(line)["messages"][-1]["content"] for line in written]
    assert completions == ["Echo: how do I reset it", "Two years from purchase."]


def test_side_by_side_answers_one_question_with_each_strategy(
        monkeypatch: pytest.MonkeyPatch, openai_server: OpenAICompatibleServer) -> None:
    use_echo_server(monkeypatch, openai_server)
    monkeypatch.setenv("ASSISTANT_EXAMPLES", str(Path(APP).parents[1] / "knowledge" / "examples.jsonl"))
    app = AppTest.from_file(APP, default_timeout=HANG_GUARD_S).run()
    app.sidebar.toggle[0].set_value(True).run()
    app.sidebar.multiselect[0].set_value(["plain", "few-shot"]).run()
    app.chat_input[0].set_value("my light is amber").run()
    assert not app.exception
    replies = [m for m in app.chat_message if m.name == "assistant"]
    assert len(replies) == 2
    assert [r.caption[0].value.split(" ·")[0] for r in replies] == ["plain", "few-shot"]
    assert "Examples used" in replies[1].expander[0].label


def test_the_chosen_strategy_survives_from_another_page(monkeypatch: pytest.MonkeyPatch,
                                                         openai_server: OpenAICompatibleServer) -> None:
    use_echo_server(monkeypatch, openai_server)
    app = AppTest.from_file(APP, default_timeout=QUICK_GUARD_S)
    app.session_state["strategy"] = "rag"
    app.run()
    assert app.sidebar.selectbox[0].value == "rag"


def test_with_a_password_configured_nothing_shows_before_sign_in(monkeypatch: pytest.MonkeyPatch,
                                                                 openai_server: OpenAICompatibleServer) -> None:
    use_echo_server(monkeypatch, openai_server)
    app = AppTest.from_file(APP, default_timeout=QUICK_GUARD_S)
    app.secrets["password"] = "correct horse"
    app.run()
    assert not app.chat_input and not app.sidebar.selectbox and app.title[0].value == "Sign in"
    app.text_input[0].input("wrong")
    app.button[0].click().run()
    assert "Wrong password." in app.error[0].value and not app.chat_input
    app.text_input[0].input("correct horse")
    app.button[0].click().run()
    assert app.chat_input and not app.error
    assert "correct horse" not in str(app._tree)  # the password is never rendered back


def test_no_page_renders_raw_html() -> None:
    ui = Path(APP).parent
    offenders = [p.name for p in ui.rglob("*.py") if "unsafe_allow_html" in p.read_text()]
    assert offenders == []  # model output and documents are rendered as Markdown/text only
