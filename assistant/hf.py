"""Quiet transformers: no progress bars or advisory warnings in a CLI's output or the app's logs."""

from __future__ import annotations


def quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
