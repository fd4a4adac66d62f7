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


def is_disk_full(exc: BaseException | None) -> bool:
    """An ENOSPC however it reached us: an OSError, SQLite's "database or disk is full", Rust's "os error 28" inside
    a chromadb or safetensors message, or any of these as the cause of another error (torch.save's RuntimeError)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(sign in str(exc) for sign in ("disk is full", "No space left on device", "os error 28")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# Chroma's write path reports a full disk as "Failed to apply logs to the metadata segment", the cause dropped; a
# failed write with less than this left is taken for what it almost surely is. (The space a failed write held, its
# journal, is given back before we look, so "0 bytes free" cannot be the test.)
NEARLY_FULL_BYTES = 256 * 2**20


def nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def no_space(folder: Path, doing: str) -> NoSpace:
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free now"
    except OSError:
        free = "free space unknown"
    return NoSpace(f"The disk holding {folder} filled up while {doing} ({free}). Free some space and run the command "
                   "again: what was written completely is kept, and an interrupted ingest or training picks up "
                   "where it stopped.")


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
        raise no_space(folder() if callable(folder) else folder, doing) from None
