"""`assistant ask` and `assistant chat`: answer with a strategy, in one shot or as a conversation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from assistant.config import load_settings
from assistant.errors import ConfigError
from assistant.models import BACKENDS, Message

BackendOpt = Annotated[Optional[str], typer.Option(help=f"Generator backend: {' | '.join(BACKENDS)}.")]
ModelOpt = Annotated[Optional[str], typer.Option(help="Model: a local folder/.gguf, or an OpenAI model id.")]
MaxTokensOpt = Annotated[Optional[int], typer.Option(help="Most tokens to generate.")]
TemperatureOpt = Annotated[Optional[float], typer.Option(help="0 = greedy (reproducible).")]


StrategyOpt = Annotated[str, typer.Option(help="plain | few-shot | rag | fine-tuned:NAME, or a combination joined "
                                             "with + (rag+few-shot, rag+fine-tuned:NAME).")]
ExamplesOpt = Annotated[Optional[Path], typer.Option(help="Example bank for few-shot (JSONL or CSV).")]
CollectionOpt = Annotated[Optional[str], typer.Option("--collection", "-c", help="Knowledge base (rag).")]
TopKOpt = Annotated[Optional[int], typer.Option("-k", min=1, max=50, help="Passages in the prompt (rag).")]


def _strategy(strategy: str, backend: str | None, model: str | None, max_tokens: int | None,
              temperature: float | None, collection: str | None, k: int | None, examples: Path | None):
    from assistant.strategies import build_strategy, generator_for

    if backend is not None and backend not in BACKENDS:
        raise ConfigError(f"Unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}.")
    settings = load_settings(backend=backend, model=model, max_tokens=max_tokens, temperature=temperature)
    generator = generator_for(strategy, settings)
    return build_strategy(strategy, settings, generator, collection=collection, k=k, examples=examples)


def _print_streamed(stream) -> None:
    for piece in stream:
        print(piece, end="", flush=True)
    print()
    answer = stream.answer
    for source in answer.sources:
        where = source.source + (f" ({source.location})" if source.location else "")
        snippet = " ".join(source.snippet.split())[:160]
        print(f"  [{source.number}] {where}: {snippet}…")
    for number, example in enumerate(answer.examples, start=1):
        print(f"  example {number}: {' '.join(example.prompt.split())[:120]}")


def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    strategy: StrategyOpt = "plain",
    collection: CollectionOpt = None,
    k: TopKOpt = None,
    examples: ExamplesOpt = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    max_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole answer (usage, latency, sources) as JSON.")]
    = False,
) -> None:
    """Answer one question with a strategy and stream the answer; rag lists the numbered sources after it."""
    answerer = _strategy(strategy, backend, model, max_tokens, temperature, collection, k, examples)
    if as_json:
        print(json.dumps(answerer.answer(question).to_dict(), ensure_ascii=False, indent=2))
        return
    _print_streamed(answerer.stream(question))


def chat(
    strategy: StrategyOpt = "plain",
    collection: CollectionOpt = None,
    k: TopKOpt = None,
    examples: ExamplesOpt = None,
    backend: BackendOpt = None,
    model: ModelOpt = None,
    max_tokens: MaxTokensOpt = None,
    temperature: TemperatureOpt = None,
) -> None:
    """Chat in the terminal, keeping the conversation. /reset starts over; Ctrl-D or /exit leaves."""
    answerer = _strategy(strategy, backend, model, max_tokens, temperature, collection, k, examples)
    history: list[Message] = []
    print(f"Chatting with {answerer.generator.model_id} ({strategy}). /reset starts over, /exit or Ctrl-D leaves.")
    while True:
        try:
            question = input("you> ").strip()
        except EOFError:
            print()
            return
        if question in {"/exit", "/quit"}:
            return
        if question == "/reset":
            history.clear()
            print("(conversation cleared)")
            continue
        if not question:
            continue
        print("assistant> ", end="", flush=True)
        stream = answerer.stream(question, history)
        _print_streamed(stream)
        history += [Message("user", question), Message("assistant", stream.answer.text)]
