"""Every prompt the assistant sends, in one place."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.models.base import Message

SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer the user's question accurately and concisely. "
    "If you do not know the answer, say so instead of guessing."
)


def plain_chat(question: str, history: Sequence[Message] = ()) -> list[Message]:
    """The plain strategy's prompt: the system prompt, the conversation so far, then the new question."""
    return [Message("system", SYSTEM_PROMPT), *history, Message("user", question)]
