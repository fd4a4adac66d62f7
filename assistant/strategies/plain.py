"""plain: the model as it is, with only the conversation."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.models import Message
from assistant.prompts import plain_chat
from assistant.strategies.base import Prepared, Strategy


class PlainStrategy(Strategy):
    name = "plain"

    def _prepare(self, question: str, history: Sequence[Message]) -> Prepared:
        return Prepared(plain_chat(question, history))
