"""Chat page: streamed answers from the chosen strategy, sources under each answer, history per browser session."""

from __future__ import annotations

import streamlit as st

from assistant.errors import AssistantError
from assistant.models import Message
from assistant.strategies import available_strategies
from ui.core import generator_or_stop, settings_or_stop, strategy_or_stop

st.set_page_config(page_title="Assistant", page_icon="💬")
settings = settings_or_stop()
history: list[Message] = st.session_state.setdefault("history", [])
shown: list[dict] = st.session_state.setdefault("shown", [])  # what each turn displayed, with its sources

with st.sidebar:
    name = st.selectbox("Strategy", available_strategies(settings), help="plain: the model alone; rag: answers "
                        f"from the knowledge base `{settings.collection}`, with numbered sources; fine-tuned:NAME: "
                        "a model from `assistant finetune train`.")
    generator = generator_or_stop(settings, name)
    st.markdown(f"**Model**: `{generator.model_id}` ({settings.backend})")
    if st.button("New chat", icon="🧹"):
        history.clear()
        shown.clear()

strategy = strategy_or_stop(name, settings, generator)


def show_sources(sources: list) -> None:
    if sources:
        with st.expander(f"Sources ({len(sources)})"):
            for source in sources:
                where = source.source + (f" — {source.location}" if source.location else "")
                st.markdown(f"**[{source.number}]** `{where}`")
                st.text(source.snippet[:600])


st.title("Chat")
for turn in shown:
    with st.chat_message(turn["role"]):
        st.markdown(turn["text"])
        show_sources(turn.get("sources", []))

if question := st.chat_input("Ask a question"):
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        try:
            stream = strategy.stream(question, history)
            st.write_stream(stream)
            answer = stream.answer
        except AssistantError as exc:
            st.error(str(exc))
            st.stop()
        show_sources(answer.sources)
        st.caption(f"{answer.strategy} · {answer.usage.prompt_tokens} prompt + {answer.usage.completion_tokens} "
                   f"answer tokens · {answer.latency_s:.1f} s · {answer.model}")
    history += [Message("user", question), Message("assistant", answer.text)]
    shown += [{"role": "user", "text": question}, {"role": "assistant", "text": answer.text, "sources": answer.sources}]
