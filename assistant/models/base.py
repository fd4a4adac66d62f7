"""What every generator backend looks like: messages in, a streamed or complete Generation out.

Backends subclass BaseGenerator and implement one method, `_stream`, which yields text pieces and finally one
StreamEnd with the token usage. Timing, option handling and assembling the Generation live here, once.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Literal, Protocol, runtime_checkable

from assistant.errors import AssistantError, ConfigError, ModelUnavailable

Role = Literal["system", "user", "assistant"]
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise AssistantError(f"Unknown message role {self.role!r}; use one of {', '.join(ROLES)}.")
        if not isinstance(self.content, str):
            raise AssistantError(f"Message content must be text, got {type(self.content).__name__}.")


def as_messages(messages: Iterable[Message | Mapping[str, str]]) -> list[Message]:
    """Accept Message objects or OpenAI-style {"role", "content"} dicts; refuse an empty conversation."""
    result = [m if isinstance(m, Message) else Message(m["role"], m["content"]) for m in messages]  # type: ignore[arg-type]
    if not result:
        raise AssistantError("Nothing to answer: the conversation has no messages.")
    return result


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class GenerationOptions:
    max_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy, reproducible
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()  # the answer ends before the first of these (OpenAI's `stop`: at most 4)

    def __post_init__(self) -> None:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        if len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
            raise ConfigError(f"stop must be at most 4 non-empty strings, got {self.stop!r}.")
        object.__setattr__(self, "stop", stop)
        if not (isinstance(self.max_tokens, int) and self.max_tokens >= 1):
            raise ConfigError(f"max_tokens must be a whole number ≥ 1, got {self.max_tokens!r}.")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"temperature must be between 0 and 2, got {self.temperature!r}.")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}.")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def override(self, **opts: object) -> GenerationOptions:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(opts) - known)
        if unknown:
            raise ConfigError(f"Unknown generation option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        return replace(self, **{k: v for k, v in opts.items() if v is not None})


class StopSequence(Exception):
    """Thrown into a backend's stream when its text reached a stop sequence: the backend stops generating and ends
    with its StreamEnd (usage so far), as if the model had stopped there."""


@dataclass(frozen=True)
class StreamEnd:
    """The last event of a backend's stream: what the backend counted."""

    usage: Usage
    finish_reason: Literal["stop", "length"]


@dataclass(frozen=True)
class Generation:
    text: str
    usage: Usage
    latency_s: float
    time_to_first_token_s: float | None
    model: str
    finish_reason: str

    def to_dict(self) -> dict:
        data = asdict(self)
        data["usage"]["total_tokens"] = self.usage.total_tokens
        return data


class TextStream(Iterator[str]):
    """Text pieces as they are generated (what `st.write_stream` wants); `.generation` once it is exhausted."""

    def __init__(self, events: Iterator[str | StreamEnd], model: str) -> None:
        self._events = events
        self._model = model
        self._started = time.perf_counter()
        self._first_token: float | None = None
        self._parts: list[str] = []
        self._generation: Generation | None = None

    def __next__(self) -> str:
        for event in self._events:
            if isinstance(event, StreamEnd):
                self._finish(event)
                continue
            if event:
                if self._first_token is None:
                    self._first_token = time.perf_counter() - self._started
                self._parts.append(event)
                return event
        if self._generation is None:
            raise AssistantError(f"The {self._model} stream ended without reporting its token usage.")
        raise StopIteration

    def _finish(self, end: StreamEnd) -> None:
        self._generation = Generation(
            text="".join(self._parts),
            usage=end.usage,
            latency_s=time.perf_counter() - self._started,
            time_to_first_token_s=self._first_token,
            model=self._model,
            finish_reason=end.finish_reason,
        )

    def close(self) -> None:
        """Stop generating early (the reader went away)."""
        close = getattr(self._events, "close", None)
        if close:
            close()

    @property
    def generation(self) -> Generation:
        if self._generation is None:
            raise RuntimeError("The stream has not finished yet; iterate it to the end first.")
        return self._generation


@runtime_checkable
class Generator(Protocol):
    model_id: str

    def generate(self, messages: Sequence[Message], **opts: object) -> Generation: ...

    def stream(self, messages: Sequence[Message], **opts: object) -> TextStream: ...


class BaseGenerator(ABC):
    def __init__(self, model_id: str, defaults: GenerationOptions | None = None) -> None:
        self.model_id = model_id
        self.defaults = defaults or GenerationOptions()

    @abstractmethod
    def _stream(self, messages: list[Message], options: GenerationOptions) -> Iterator[str | StreamEnd]:
        """Yield text pieces as they come, then exactly one StreamEnd. A StopSequence thrown in at a yield means:
        stop generating, then yield the StreamEnd."""

    def stream(self, messages: Sequence[Message | Mapping[str, str]], **opts: object) -> TextStream:
        options = self.defaults.override(**opts)
        events = self._stream(as_messages(messages), options)
        return TextStream(_until_stop(events, options.stop) if options.stop else events, self.model_id)

    def generate(self, messages: Sequence[Message | Mapping[str, str]], **opts: object) -> Generation:
        stream = self.stream(messages, **opts)
        for _ in stream:
            pass
        return stream.generation


def _until_stop(events: Iterator[str | StreamEnd], stops: tuple[str, ...]) -> Iterator[str | StreamEnd]:
    """The text up to the first stop sequence. Text that could be the start of one is held back until the next
    piece shows it is not, so a stop split over two tokens is still caught and never shown."""
    held = ""
    for event in events:
        if isinstance(event, StreamEnd):
            if held:
                yield held
            yield event
            return
        held += event
        found = [i for i in (held.find(stop) for stop in stops) if i >= 0]
        if found:
            if held[:min(found)]:
                yield held[:min(found)]
            end = events.throw(StopSequence())  # type: ignore[attr-defined]  (a generator)
            while not isinstance(end, StreamEnd):  # what the backend had already decoded after the stop
                end = next(events)
            yield replace(end, finish_reason="stop")
            return
        keep = max((k for stop in stops for k in range(1, len(stop)) if held.endswith(stop[:k])), default=0)
        if len(held) > keep:
            yield held[:len(held) - keep]
            held = held[len(held) - keep:]


def check_chat_template(render: Callable[[list[dict]], object], model_id: str) -> None:
    """Render a one-message chat through a model's template once, at load. The template is Jinja code written by
    whoever made the model file, run in Jinja's sandbox; one that reaches outside it (or breaks) is refused here with
    the reason, rather than failing every answer."""
    from jinja2 import TemplateError

    try:
        render([{"role": "user", "content": "Hello"}])
    except TemplateError as exc:
        raise ModelUnavailable(f"The chat template of {model_id} is refused ({type(exc).__name__}: {exc}) A model "
                               "file's template should only format messages; use a copy with a standard template."
                               ) from None
