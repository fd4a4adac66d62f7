"""Fakes for fast tests: a generator that records what it was asked and answers from a queue."""

from __future__ import annotations

from collections.abc import Iterator

from assistant.models.base import BaseGenerator, GenerationOptions, Message, StreamEnd, Usage


class FakeGenerator(BaseGenerator):
    """Answers with queued replies (or an echo of the question), one word per streamed piece."""

    def __init__(self, replies: list[str] | None = None, model_id: str = "fake-model") -> None:
        super().__init__(model_id, GenerationOptions(max_tokens=64))
        self.replies = list(replies or [])
        self.calls: list[tuple[list[Message], GenerationOptions]] = []

    def _stream(self, messages: list[Message], options: GenerationOptions) -> Iterator[str | StreamEnd]:
        self.calls.append((messages, options))
        reply = self.replies.pop(0) if self.replies else f"You asked: {messages[-1].content}"
        words = reply.split(" ")
        kept = words[: options.max_tokens]
        for index, word in enumerate(kept):
            yield word if index == 0 else " " + word
        prompt_tokens = sum(len(m.content.split()) for m in messages)
        yield StreamEnd(Usage(prompt_tokens, len(kept)), "length" if len(words) > len(kept) else "stop")
