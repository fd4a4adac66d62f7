"""The few exceptions a user sees. Each message says what happened and what to do about it.

The CLI turns them into one line and a non-zero exit code; the Streamlit app into `st.error`.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path


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


class NoSpace(AssistantError):
    """The disk filled up while writing. What was written completely before is kept; the command can be re-run."""


def is_disk_full(exc: BaseException) -> bool:
    """An ENOSPC however it reached us: an OSError, SQLite's "database or disk is full", or Rust's "os error 28"
    inside a chromadb or safetensors message."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return any(sign in text for sign in ("disk is full", "No space left on device", "os error 28"))


@contextlib.contextmanager
def disk_full_as_error(folder: Path | Callable[[], Path], doing: str) -> Iterator[None]:
    """Turn a full disk met while `doing` into one NoSpace that says where (`folder`, or what it returns: worked out
    only then), how much is free and what to do."""
    try:
        yield
    except AssistantError:
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        folder = folder() if callable(folder) else folder
        try:
            free = f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free now"
        except OSError:
            free = "free space unknown"
        raise NoSpace(f"The disk holding {folder} filled up while {doing} ({free}). Free some space and run the "
                      "command again: what was written completely is kept, and an interrupted ingest or training "
                      "picks up where it stopped.") from None
