"""Chat page: streamed answers from the chosen strategy (or several side by side), sources or examples under each
answer, feedback (thumbs, corrections) saved for fine-tuning, history per browser session."""

from __future__ import annotations

import streamlit as st

from assistant import feedback
from assistant.errors import AssistantError
from assistant.models import BACKENDS, Message
from assistant.strategies import available_strategies
from ui.core import collection_names, generator_or_stop, settings_or_stop, strategy_or_stop

history: list[Message] = st.session_state.setdefault("history", [])
shown: list[dict] = st.session_state.setdefault("shown", [])  # what each turn displayed

with st.sidebar:
    base = settings_or_stop()
    side_by_side = st.toggle("Side by side", help="One question, several strategies answering next to each other.")
    choices = available_strategies(base)
    wanted = st.session_state.get("strategy", "plain")  # the fine-tune page's "chat with this model" sets it
    if side_by_side:
        names = st.multiselect("Strategies", choices, default=[n for n in ("plain", "rag") if n in choices])
    else:
        names = [st.selectbox("Strategy", choices, index=choices.index(wanted) if wanted in choices else 0,
                              help="plain: the model alone; few-shot: similar examples as earlier turns; rag: the "
                                   "knowledge base, with numbered sources; fine-tuned:NAME: a trained model.")]
    backend = st.selectbox("Backend", BACKENDS, index=BACKENDS.index(base.backend))
    model = st.text_input("Model", value=base.model or "", help="Empty: the default for the backend.") or None
    collections = collection_names(base) or [base.collection]
    collection = st.selectbox("Knowledge base", collections,
                              index=collections.index(base.collection) if base.collection in collections else 0)
    k = st.slider("Passages (k)", 1, 12, base.top_k)
    max_tokens = st.number_input("Max tokens", 16, 4096, base.max_tokens, step=16)
    if st.button("New chat", icon=":material/cleaning_services:"):
        history.clear()
        shown.clear()
    if st.button("Training file from feedback", icon=":material/edit_note:",
                 help="Accepted and corrected answers → a dataset for the Fine-tune page."):
        path, count = feedback.export_training(base.home)
        st.success(f"{count} examples written to {path.name}")

settings = settings_or_stop(backend=backend, model=model, collection=collection, top_k=k, max_tokens=int(max_tokens))


def strategy_for(name: str):
    return strategy_or_stop(name, settings, generator_or_stop(settings, name))


def show_context(turn: dict) -> None:
    if turn.get("sources"):
        with st.expander(f"Sources ({len(turn['sources'])})"):
            for source in turn["sources"]:
                where = source.source + (f" — {source.location}" if source.location else "")
                st.markdown(f"**[{source.number}]** `{where}`")
                st.text(source.snippet[:600])
    if turn.get("examples"):
        with st.expander(f"Examples used ({len(turn['examples'])})"):
            for example in turn["examples"]:
                st.text(f"Q: {example.prompt}\nA: {example.completion}")
    st.caption(turn["caption"], help=turn.get("runtime"))


def feedback_controls(turn: dict) -> None:
    """Thumbs and a correction box; each change is one line in <home>/feedback.jsonl."""
    key = turn["answer_id"]
    rating = st.feedback("thumbs", key=f"rating-{key}")
    with st.popover("Edit the answer", icon=":material/edit:"):
        edited = st.text_area("Corrected answer", value=turn["text"], key=f"edit-{key}")
        save = st.button("Save correction", key=f"save-{key}")
    if rating != turn.get("rating") or save:
        turn["rating"] = rating
        feedback.record(settings.home, feedback.Feedback(key, turn["question"], turn["text"], turn["strategy"],
                                                         turn["model"], rating, edited if save else None))
        if save:
            st.toast("Correction saved")


def answer_turn(name: str, question: str, past: list[Message]) -> dict | None:
    try:
        stream = strategy_for(name).stream(question, past)
        st.write_stream(stream)
        answer = stream.answer
    except AssistantError as exc:
        st.error(str(exc))
        return None
    turn = {"role": "assistant", "text": answer.text, "sources": answer.sources, "examples": answer.examples,
            "question": question, "strategy": answer.strategy, "model": answer.model,
            "answer_id": feedback.new_answer_id(), "runtime": answer.runtime,
            "caption": f"{answer.strategy} · {answer.usage.prompt_tokens} prompt + {answer.usage.completion_tokens} "
                       f"answer tokens · {answer.latency_s:.1f} s · {answer.model}"}
    show_context(turn)
    return turn


def show_turn(turn: dict) -> None:
    if turn["role"] == "side":
        with st.chat_message("user"):
            st.markdown(turn["question"])
        for column, answer in zip(st.columns(len(turn["answers"])), turn["answers"]):
            with column, st.chat_message("assistant"):
                st.markdown(answer["text"])
                show_context(answer)
                feedback_controls(answer)
        return
    with st.chat_message(turn["role"]):
        st.markdown(turn["text"])
        if turn["role"] == "assistant":
            show_context(turn)
            feedback_controls(turn)


st.title("Chat")
for turn in shown:
    show_turn(turn)

if (question := st.chat_input("Ask a question")) and names:
    with st.chat_message("user"):
        st.markdown(question)
    if side_by_side:
        answers = []
        for column, name in zip(st.columns(len(names)), names):
            with column, st.chat_message("assistant"):
                st.caption(name)
                answers.append(answer_turn(name, question, []))
        shown.append({"role": "side", "question": question, "answers": [a for a in answers if a]})
        st.rerun()  # redraw with the feedback controls
    else:
        with st.chat_message("assistant"):
            turn = answer_turn(names[0], question, history)
        if turn is None:
            st.stop()
        history += [Message("user", question), Message("assistant", turn["text"])]
        shown += [{"role": "user", "text": question}, turn]
        st.rerun()
