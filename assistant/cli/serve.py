"""`assistant serve`: the OpenAI-compatible API (assistant/server/)."""

from __future__ import annotations

from typing import Annotated

import typer

from assistant.config import load_settings


def serve(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs ASSISTANT_API_KEYS.")]
    = "127.0.0.1",
) -> None:
    """Serve every strategy and fine-tuned model as an OpenAI-compatible API (chat, completions, embeddings, files,
    fine-tuning jobs) on http://HOST:PORT/v1."""
    from assistant.server import serve as run

    settings = load_settings()
    print(f"Serving the OpenAI-compatible API on http://{host}:{port}/v1", flush=True)
    run(settings, host, port)
