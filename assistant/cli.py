"""The `assistant` command. Every AssistantError becomes one line on stderr and a non-zero exit code."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer

from assistant.cli_compare import compare
from assistant.cli_finetune import finetune_app
from assistant.cli_kb import ingest, kb_app, retrieve
from assistant.config import load_settings
from assistant.errors import AssistantError, ConfigError
from assistant.models import BACKENDS, Message

app = typer.Typer(
    help="Retrieval-augmented assistant with optional fine-tuning. Offline by default.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command()(ingest)
app.command()(retrieve)
app.add_typer(kb_app, name="kb")
app.add_typer(finetune_app, name="finetune")
app.command()(compare)

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


@app.command()
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


@app.command()
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


@app.command()
def doctor() -> None:
    """Check the data home, the bundled models and the configured backend; say how to fix what is wrong."""
    from assistant.doctor import run_checks

    settings = load_settings()
    failed = 0
    for check in run_checks(settings):
        mark = "ok  " if check.ok else "FAIL"
        print(f"[{mark}] {check.name}: {check.detail}", flush=True)
        failed += not check.ok
    if failed:
        print(f"{failed} check(s) failed.", file=sys.stderr)
        raise typer.Exit(1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 to serve your network).")] = "127.0.0.1",
) -> None:
    """Start the web app. Extra --server.* / --theme.* options are passed to Streamlit."""
    settings = load_settings()  # a bad setting fails here, in one line, rather than inside the browser
    app_file = Path(__file__).resolve().parents[1] / "ui" / "app.py"  # `ui` is installed beside `assistant`
    if not app_file.is_file():
        raise AssistantError(f"The web app is missing ({app_file}); reinstall with `make install`.")
    command = [
        sys.executable, "-m", "streamlit", "run", str(app_file),
        "--server.port", str(port), "--server.address", host,
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        # Streamlit's own HTTP limit, so the server refuses what the upload page would refuse anyway
        "--server.maxUploadSize", str(max(1, round(settings.max_file_mb))),
        "--client.toolbarMode", "minimal",  # no "Deploy" button: this app is not on Streamlit Cloud
        *ctx.args,
    ]
    print(f"Serving on http://{host}:{port}", flush=True)
    # Replaced by Streamlit rather than waiting on it: a stop signal (SIGTERM from a service manager, a test, `kill`)
    # then reaches the server itself instead of leaving it orphaned and holding the port.
    os.execv(sys.executable, command)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
