"""What the pages share: the settings and the generator, built once per process (st.cache_resource)."""

from __future__ import annotations

import streamlit as st

from assistant.config import Settings, load_settings
from assistant.errors import AssistantError
from assistant.models import Generator, build_generator


def settings_or_stop() -> Settings:
    try:
        return load_settings()
    except AssistantError as exc:
        st.error(str(exc))
        st.stop()


@st.cache_resource(show_spinner="Loading the model…")
def _generator(_settings: Settings, key: str) -> Generator:
    # `key` (the settings as JSON, secrets masked) decides when to rebuild; `_settings` is not hashed.
    return build_generator(_settings)


def generator_or_stop(settings: Settings) -> Generator:
    try:
        return _generator(settings, settings.model_dump_json())
    except AssistantError as exc:
        st.error(str(exc))
        st.stop()
