"""What the pages share: settings, generator and strategies, built once per process (st.cache_resource)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from assistant.config import Settings, load_settings
from assistant.errors import AssistantError
from assistant.models import Generator
from assistant.strategies import Strategy, StrategySpec, build_strategy, generator_for

T = TypeVar("T")


def _or_stop(build: Callable[..., T], *args: object) -> T:
    """The page shows the one-line error (bad setting, missing model, no knowledge base) instead of a traceback."""
    try:
        return build(*args)
    except AssistantError as exc:
        st.error(str(exc))
        st.stop()


@st.cache_resource(show_spinner="Loading the model…")
def _generator(strategy: str, _settings: Settings, key: str) -> Generator:
    # `key` (the settings as JSON, secrets masked) decides when to rebuild; `_settings` is not hashed.
    return generator_for(strategy, _settings)


@st.cache_resource(show_spinner="Opening the knowledge base…")
def _strategy(name: str, _settings: Settings, _generator: Generator, key: str) -> Strategy:
    return build_strategy(name, _settings, _generator)


def settings_or_stop() -> Settings:
    return _or_stop(load_settings)


def generator_or_stop(settings: Settings, strategy: str = "plain") -> Generator:
    """Strategies without a fine-tuned model share the configured generator; each fine-tuned one has its own."""
    tuned = StrategySpec.parse(strategy).fine_tuned
    return _or_stop(_generator, f"fine-tuned:{tuned}" if tuned else "plain", settings, settings.model_dump_json())


def strategy_or_stop(name: str, settings: Settings, generator: Generator) -> Strategy:
    return _or_stop(_strategy, name, settings, generator, settings.model_dump_json())
