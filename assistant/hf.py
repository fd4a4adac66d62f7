"""Quiet transformers: no progress bars or advisory warnings in a CLI's output or the app's logs."""

from __future__ import annotations

import warnings


def quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # Deprecation notices that transformers raises at peft's calls into it: noise for our users, not theirs to fix.
    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*deprecated")
