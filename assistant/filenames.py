"""File names that came from a browser or a user, made harmless: whatever they say, a file saved under one stays in
the folder it is saved to. Shared by the knowledge-base uploads and the dataset/eval uploads."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_BYTES = 200  # in UTF-8; file systems allow 255, and numbered " (2)" variants need a few more
_UNSAFE = re.compile(r'[<>:"|?*\\/]')  # separators, and what Windows refuses in names
_EDGES = re.compile(r"^[\s.]+|[\s.]+$")  # no hidden files, no "..", no names Windows would trim


def safe_name(name: str, default: str = "upload", max_bytes: int = MAX_NAME_BYTES) -> str:
    """One harmless file name: the last path component, no control characters, no leading dots, bounded length."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # NUL, controls, bidi overrides
    name = _EDGES.sub("", _UNSAFE.sub("_", name))
    stem, dot, suffix = name.rpartition(".")
    if not dot or len(suffix) > 16:
        stem, suffix = name, ""
    budget = max_bytes - len(suffix.encode()) - 1
    stem = _EDGES.sub("", stem.encode()[:budget].decode("utf-8", "ignore"))  # never half a character
    if not stem:
        return default
    if stem.split(".")[0].upper() in _WINDOWS_DEVICES:  # "CON.txt" opens the console on Windows, not a file
        stem = f"_{stem}"
    return stem + (f".{suffix}" if suffix else "")


_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
