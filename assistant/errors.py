"""The few exceptions a user sees. Each message says what happened and what to do about it.

The CLI turns them into one line and a non-zero exit code; the Streamlit app into `st.error`.
"""


class AssistantError(Exception):
    """Base for every failure caused by input, configuration or the environment (not by a bug)."""

    exit_code = 1


class ConfigError(AssistantError):
    """A setting has a bad value, or a required setting is missing."""

    exit_code = 2


class ModelUnavailable(AssistantError):
    """A model (bundled package, local folder, adapter, remote model id) cannot be found or loaded."""


class BackendError(AssistantError):
    """A generator backend failed at run time: unreachable server, rejected key, timeout, bad request."""


class StoreError(AssistantError):
    """The vector store cannot be used as asked: unreachable server, busy embedded store, mismatched embedder."""
