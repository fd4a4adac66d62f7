"""Uploaded example and evaluation files: where they land, and what is refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import datasets_folder
from assistant.config import load_settings
from assistant.errors import AssistantError


@pytest.mark.parametrize("hostile", ["../../x.jsonl", "/etc/x.jsonl", "a\0b.jsonl", "y" * 300 + ".jsonl",
                                     "..\\..\\x.jsonl", ".hidden.jsonl", "Data.JSONL"])
def test_uploads_stay_inside_the_data_folder(hostile: str, isolated_environment: Path) -> None:
    path = datasets_folder.save_upload(load_settings(), hostile, b'{"prompt": "p", "completion": "c"}\n')
    assert path.parent == (isolated_environment / "datasets").resolve()
    assert path.suffix == ".jsonl" and len(path.name) <= 100 and not path.name.startswith(".")
    assert datasets_folder.data_files(load_settings()) == [path]


def test_bad_uploads_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    with pytest.raises(AssistantError, match="jsonl or .csv"):
        datasets_folder.save_upload(settings, "model.bin", b"x")
    with pytest.raises(AssistantError, match="not UTF-8"):
        datasets_folder.save_upload(settings, "data.jsonl", b"\xff\xfe\x00")
    monkeypatch.setenv("ASSISTANT_MAX_FILE_MB", "0.001")
    with pytest.raises(AssistantError, match="larger than"):
        datasets_folder.save_upload(load_settings(), "data.csv", b"x" * 2000)
    assert datasets_folder.data_files(load_settings()) == []
