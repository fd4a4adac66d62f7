"""Example and evaluation files uploaded in the app, kept under `<home>/datasets/` for the jobs that read them.

A browser sends whatever file name it likes: the name is reduced to one plain component and the target checked to
lie in the folder; type, size and encoding are checked before a byte is written, and the file is renamed into place.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.filenames import safe_name

DATA_SUFFIXES = (".jsonl", ".csv")


def data_dir(settings: Settings) -> Path:
    return settings.home / "datasets"


def data_files(settings: Settings) -> list[Path]:
    folder = data_dir(settings).resolve()
    return sorted(p for p in folder.iterdir() if p.suffix in DATA_SUFFIXES) if folder.is_dir() else []


def save_upload(settings: Settings, filename: str, data: bytes) -> Path:
    """Save an uploaded example or eval file under `<home>/datasets/` (an existing one of that name is replaced)."""
    plain = Path(safe_name(filename, "upload.jsonl", max_bytes=100))
    name = plain.stem + plain.suffix.lower()
    if plain.suffix.lower() not in DATA_SUFFIXES:
        raise AssistantError(f"{filename!r}: upload a .jsonl or .csv file.")
    if len(data) > settings.max_file_mb * 1024 * 1024:
        raise AssistantError(f"{filename!r} is larger than {settings.max_file_mb:g} MB (ASSISTANT_MAX_FILE_MB).")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise AssistantError(f"{filename!r} is not UTF-8 text; examples are JSONL or CSV files.") from None
    folder = data_dir(settings).resolve()
    target = (folder / name).resolve()
    if target.parent != folder:  # safe_name makes this impossible; checked anyway, it is what matters
        raise AssistantError(f"Refusing to write {filename!r} outside {folder}.")
    folder.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    temp.write_bytes(data)
    os.replace(temp, target)
    return target
