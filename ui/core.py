"""What the pages share: settings, generator and strategies, built once per process (st.cache_resource)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from assistant import datasets_folder, jobs
from assistant.config import Settings, load_settings
from assistant.errors import AssistantError
from assistant.models import Generator
from assistant.strategies import Strategy, StrategySpec, build_strategy, generator_for

T = TypeVar("T")
GENERATOR_FIELDS = {"home", "backend", "model", "adapter", "max_tokens", "temperature", "top_p", "seed", "threads",
                    "device", "local_cpu", "local_precision", "openai_base_url", "openai_timeout",
                    "openai_max_retries"}


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


def settings_or_stop(**overrides: object) -> Settings:
    """The settings, with the page's choices (sidebar widgets) applied over them."""
    return _or_stop(lambda: load_settings(**overrides))


def collection_names(settings: Settings) -> list[str]:
    from ingest.kb import collection_names as names

    try:
        return names(settings)
    except AssistantError:  # an unreachable Chroma server: the chat page still works without rag
        return []


def generator_or_stop(settings: Settings, strategy: str = "plain") -> Generator:
    """Strategies without a fine-tuned model share the configured generator; each fine-tuned one has its own."""
    tuned = StrategySpec.parse(strategy).fine_tuned
    key = settings.model_dump_json(include=GENERATOR_FIELDS)  # changing k or the collection keeps the model loaded
    return _or_stop(_generator, f"fine-tuned:{tuned}" if tuned else "plain", settings, key)


def strategy_or_stop(name: str, settings: Settings, generator: Generator) -> Strategy:
    return _or_stop(_strategy, name, settings, generator, settings.model_dump_json())


def recent_jobs(settings: Settings, kind: str, limit: int) -> tuple[list[jobs.Job], set[str]]:
    """The newest jobs of a kind, and the ids of those that ended since this session's previous look."""
    current = jobs.list_jobs(settings, kind)[:limit]
    running = {job.id for job in current if job.running}
    key = f"running-{kind}"
    ended = st.session_state.get(key, set()) - running
    st.session_state[key] = running
    return current, ended


def job_log(job: jobs.Job) -> None:
    with st.expander("Log", expanded=job.status == "failed"):
        st.code(job.log_tail(30) or "(nothing yet)", language=None)


def keep_upload(settings: Settings, upload, key: str) -> None:
    """Save a newly uploaded example or eval file once (reruns hand the same upload over again) and select it in
    the picker whose state key is `key`; a refused file is an error on the page."""
    if upload is None or st.session_state.get(f"{key}-saved") == upload.file_id:
        return
    try:
        st.session_state[key] = str(datasets_folder.save_upload(settings, upload.name, upload.getvalue()))
        st.session_state[f"{key}-saved"] = upload.file_id
    except AssistantError as exc:
        st.error(str(exc))
