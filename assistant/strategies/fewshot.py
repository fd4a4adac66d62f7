"""few-shot: the most similar examples from the example bank go into the prompt as earlier turns."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.fewshot import ExampleBank
from assistant.models import Message
from assistant.prompts import plain_chat, with_examples
from assistant.strategies.base import Prepared, Strategy
from assistant.strategies.rag import count_tokens


class FewShotStrategy(Strategy):
    name = "few-shot"

    def __init__(self, generator, bank: ExampleBank, k: int = 3) -> None:
        super().__init__(generator)
        self.bank, self.k = bank, k

    def _prepare(self, question: str, history: Sequence[Message]) -> Prepared:
        messages = plain_chat(question, history)
        examples = select_examples(self.generator, self.bank, question, self.k, messages)
        return Prepared(with_examples(messages, examples), examples=examples)


def select_examples(generator, bank: ExampleBank, question: str, k: int, messages: list[Message]):
    """The examples that fit beside `messages` and the answer in the model's context window."""
    window = getattr(generator, "context_window", 8192)
    answer_room = getattr(getattr(generator, "defaults", None), "max_tokens", 512)
    budget = window - answer_room - count_tokens(generator, messages)
    return bank.select(question, k, budget, lambda text: count_tokens(generator, [Message("user", text)]))
