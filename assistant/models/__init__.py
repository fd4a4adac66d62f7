"""Generator backends, chosen by name. Heavy imports happen inside the branch that needs them."""

from __future__ import annotations

from pathlib import Path

from assistant.config import Settings
from assistant.errors import ConfigError
from assistant.models.base import BaseGenerator, Generation, GenerationOptions, Generator, Message, TextStream, Usage

BACKENDS = ("local", "openai")

__all__ = [
    "BACKENDS", "BaseGenerator", "Generation", "GenerationOptions", "Generator", "Message", "TextStream", "Usage",
    "build_generator",
]


def build_generator(
    settings: Settings, backend: str | None = None, model: str | None = None, adapter: Path | None = None
) -> Generator:
    """The generator the settings describe; `backend`/`model`/`adapter` override them (CLI flags, UI choices)."""
    match backend or settings.backend:
        case "local":
            from assistant.models.local import load_local

            return load_local(settings, model=model, adapter=adapter)
        case "openai":
            from assistant.models.openai_compat import OpenAIGenerator

            if adapter is not None:
                raise ConfigError("LoRA adapters apply to the local backend only; an OpenAI model is tuned remotely.")
            return OpenAIGenerator.from_settings(settings, model=model)
        case other:
            raise ConfigError(f"Unknown backend {other!r}; choose one of: {', '.join(BACKENDS)}.")
