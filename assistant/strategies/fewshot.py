"""few-shot: the most similar examples from the example bank go into the prompt as earlier turns."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.fewshot import ExampleBank
from assistant.models import Message
from assistant.prompts import plain_chat, with_examples
from assistant.strategies.base import Prepared, Strategy, count_tokens, room


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
    window, answer_room = room(generator)
    budget = window - answer_room - count_tokens(generator, messages)
    return bank.select(question, k, budget, lambda text: count_tokens(generator, [Message("user", text)]))
