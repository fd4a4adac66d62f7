"""`assistant serve`: an OpenAI-compatible HTTP API over the same library calls as the CLI and the app.

Every strategy and fine-tuned model is a model id (chat and legacy completions), the embedder serves embeddings, and
files and fine-tuning jobs run the local LoRA trainer, so OpenAI's own SDK works against it unchanged.
"""

from __future__ import annotations

import ipaddress

from assistant.config import Settings
from assistant.errors import ConfigError


def check_binding(settings: Settings, host: str) -> None:
    """Without keys the API is open to whoever can reach it: only this machine may, then."""
    if settings.api_keys:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigError(f"Refusing to serve on {host} without API keys: anyone who can reach it could use the "
                          "models and fine-tune on this machine. Set ASSISTANT_API_KEYS (comma-separated), or "
                          "serve on 127.0.0.1.")


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    from assistant.server.app import create_app

    check_binding(settings, host)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
