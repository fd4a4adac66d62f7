"""Chat page: streamed answers from the configured generator, history kept per browser session."""

from __future__ import annotations

import streamlit as st

from assistant.errors import AssistantError
from assistant.models import Message
from assistant.prompts import plain_chat
from ui.core import generator_or_stop, settings_or_stop

st.set_page_config(page_title="Assistant", page_icon="💬")
settings = settings_or_stop()
generator = generator_or_stop(settings)
history: list[Message] = st.session_state.setdefault("history", [])

with st.sidebar:
    st.markdown(f"**Model**: `{generator.model_id}` ({settings.backend})")
    if st.button("New chat", icon="🧹"):
        history.clear()

st.title("Chat")
for message in history:
    with st.chat_message(message.role):
        st.markdown(message.content)

if question := st.chat_input("Ask a question"):
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        try:
            stream = generator.stream(plain_chat(question, history))
            st.write_stream(stream)
            reply = stream.generation
        except AssistantError as exc:
            st.error(str(exc))
            st.stop()
        st.caption(
            f"{reply.usage.prompt_tokens} prompt + {reply.usage.completion_tokens} answer tokens · "
            f"{reply.latency_s:.1f} s · {reply.model}"
        )
    history += [Message("user", question), Message("assistant", reply.text)]
