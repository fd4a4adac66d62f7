"""A strategy turns a question (and the conversation so far) into an Answer. Variants implement one method,
`_prepare`, which builds the prompt and says what went into it; the base times, generates, sanitises and assembles.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

from assistant.examples import Example
from assistant.models import Generator, Message, Usage
from assistant.safety import allowed_urls, sanitise_markdown, sanitise_stream

_CITATION = re.compile(r"\[(\d{1,3})\]")


@dataclass(frozen=True)
class Source:
    number: int  # what the answer cites as [number]
    source: str  # document id (file path relative to the knowledge-base root)
    location: str
    snippet: str
    score: float
    chunk_id: str


@dataclass(frozen=True)
class Prepared:
    """What `_prepare` decided: the prompt, what went into it, or a reply that needs no model at all."""

    messages: list[Message] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    direct_reply: str | None = None  # e.g. "nothing relevant found": answered without generating
    retrieval: dict | None = None  # rag: how the passages were found (Retriever.describe), and what it took


@dataclass(frozen=True)
class Answer:
    text: str
    strategy: str
    model: str
    sources: list[Source]
    examples: list[Example]
    cited: list[int]  # source numbers the text cites, in order of first use
    declined: bool  # answered "nothing relevant found" instead of generating
    usage: Usage
    latency_s: float
    runtime: str | None = None  # what ran the model: "llama.cpp (CPU, AVX512 kernels)", a fallback and its reason
    finish_reason: str = "stop"  # "length" when max_tokens cut the answer
    retrieval: dict | None = None  # rag: mode, embedder, reranker (and its ms) that found the sources

    @property
    def cited_sources(self) -> list[Source]:
        by_number = {s.number: s for s in self.sources}
        return [by_number[n] for n in self.cited if n in by_number]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["usage"]["total_tokens"] = self.usage.total_tokens
        return data


class Strategy(ABC):
    name = "strategy"

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    @abstractmethod
    def _prepare(self, question: str, history: Sequence[Message]) -> Prepared:
        """Build the prompt for this question."""

    def answer(self, question: str, history: Sequence[Message] = (), **options: object) -> Answer:
        stream = self.stream(question, history, **options)
        for _ in stream:
            pass
        return stream.answer

    def stream(self, question: str, history: Sequence[Message] = (), **options: object) -> AnswerStream:
        """Oldest turns are dropped, a question and its answer at a time, until the prompt leaves room for the
        answer in the model's context window. `options` are generation options (max_tokens, temperature, stop…)
        for this answer only."""
        history = list(history)
        prepared = self._prepare(question, history)
        answer_room = options.get("max_tokens")
        while history and prepared.direct_reply is None and not fits(self.generator, prepared.messages, answer_room):
            history = history[2:]
            prepared = self._prepare(question, history)
        return AnswerStream(self, prepared, options)


def count_tokens(generator: Generator, messages: list[Message]) -> int:
    counter = getattr(generator, "count_tokens", None)
    if counter is not None:
        return counter(messages)
    return sum(len(m.content) // 4 + 4 for m in messages)  # a remote model's tokenizer is not at hand: ~4 chars


def room(generator: Generator) -> tuple[int, int]:
    """(context window, tokens to keep free for the answer) of the generator, with defaults for remote models."""
    window = getattr(generator, "context_window", 8192)
    return window, getattr(getattr(generator, "defaults", None), "max_tokens", 512)


def fits(generator: Generator, messages: list[Message], answer_room: object = None) -> bool:
    window, default_room = room(generator)
    return count_tokens(generator, messages) + (answer_room if isinstance(answer_room, int) else default_room) \
        <= window


class AnswerStream(Iterator[str]):
    """Sanitised answer text as it is generated; `.answer` once exhausted."""

    def __init__(self, strategy: Strategy, prepared: Prepared, options: dict | None = None) -> None:
        self._strategy = strategy
        self._prepared = prepared
        self._started = time.perf_counter()
        self._answer: Answer | None = None
        allowed = allowed_urls(s.snippet for s in prepared.sources)
        if prepared.direct_reply is not None:
            self._text_stream = None
            self._pieces: Iterator[str] = iter([prepared.direct_reply])
        else:
            self._text_stream = strategy.generator.stream(prepared.messages, **(options or {}))
            self._pieces = sanitise_stream(self._text_stream, allowed)
        self._allowed = allowed

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration:
            self._finish()
            raise

    def _finish(self) -> None:
        if self._answer is not None:
            return
        prepared, strategy = self._prepared, self._strategy
        finish = "stop"
        if self._text_stream is None:
            text, model, usage = prepared.direct_reply or "", strategy.generator.model_id, Usage(0, 0)
        else:
            generation = self._text_stream.generation
            text = sanitise_markdown(generation.text, self._allowed)
            model, usage, finish = generation.model, generation.usage, generation.finish_reason
        numbers = {s.number for s in prepared.sources}
        cited = list(dict.fromkeys(int(n) for n in _CITATION.findall(text) if int(n) in numbers))
        self._answer = Answer(text, strategy.name, model, prepared.sources, prepared.examples, cited,
                              prepared.direct_reply is not None, usage, time.perf_counter() - self._started,
                              getattr(strategy.generator, "runtime", None), finish, prepared.retrieval)

    def close(self) -> None:
        """Stop generating (the reader went away): the model is free for the next request at once."""
        if self._text_stream is not None:
            self._text_stream.close()

    @property
    def answer(self) -> Answer:
        if self._answer is None:
            raise RuntimeError("The answer is not finished yet; iterate the stream to the end first.")
        return self._answer
