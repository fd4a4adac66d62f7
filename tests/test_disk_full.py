"""A full disk (reliability claim 3; benchmarks/reliability/disk_full.py fills a real tmpfs): every form ENOSPC
reaches us in becomes one NoSpace that says where and what to do, and a write that fails leaves nothing half-made
behind — the last whole checkpoint and registry record stay the ones read back."""

from __future__ import annotations

import errno
import json
import sqlite3
from pathlib import Path

import pytest
import torch

from assistant.config import load_settings
from assistant.errors import NoSpace, disk_full_as_error, is_disk_full
from assistant.finetune import checkpoint
from assistant.finetune.registry import ModelRecord, Registry
from ingest.store import KnowledgeStore

FULL = OSError(errno.ENOSPC, "No space left on device")


def torch_save_failure() -> RuntimeError:
    """What torch.save into a file object raises on a full disk: its own message, the OSError as the context."""
    try:
        try:
            raise FULL
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    except RuntimeError as exc:
        return exc


@pytest.mark.parametrize("exc", [
    FULL,
    sqlite3.OperationalError("database or disk is full"),
    RuntimeError("Query error: Database error: error returned from database: (code: 13) database or disk is full"),
    RuntimeError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: \"No space left on "
                 "device\" }) (os error 28)"),
    torch_save_failure(),
])
def test_every_form_of_a_full_disk_is_one_clear_error(exc: Exception, tmp_path: Path) -> None:
    assert is_disk_full(exc)
    with pytest.raises(NoSpace, match=rf"The disk holding {tmp_path} filled up while testing \(\d+ MiB free now\)\. "
                                      "Free some space and run the command again"):
        with disk_full_as_error(tmp_path, "testing"):
            raise exc


def test_other_errors_pass_through(tmp_path: Path) -> None:
    with pytest.raises(PermissionError):
        with disk_full_as_error(tmp_path, "testing"):
            raise PermissionError(errno.EACCES, "Permission denied")


def test_a_store_write_meeting_a_full_disk_says_so() -> None:
    store = KnowledgeStore(load_settings())
    with pytest.raises(NoSpace, match="filled up while writing to the store"):
        with store.writing():
            raise sqlite3.OperationalError("database or disk is full")
    with store.writing():  # the writer lock went with the failed write
        pass


def test_a_checkpoint_that_cannot_be_written_leaves_the_last_whole_one(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    weights = {"a": torch.ones(2)}
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    folder = tmp_path / "checkpoint"
    checkpoint.save(folder, weights, optimizer, scheduler, {"step": 5})

    def disk_full(*args, **kwargs):
        raise FULL

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(OSError):
        checkpoint.save(folder, {"a": torch.zeros(2)}, optimizer, scheduler, {"step": 10})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # no staging copy left taking space
    assert checkpoint.load_state(folder)["step"] == 5


def test_a_record_that_cannot_be_written_leaves_the_previous_one(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(tmp_path)
    registry.save(ModelRecord("faq", "local", "SmolLM2", "running"))

    def disk_full(*args, **kwargs):
        raise FULL

    monkeypatch.setattr(json, "dump", disk_full)
    with pytest.raises(OSError):
        registry.save(ModelRecord("faq", "local", "SmolLM2", "succeeded"))
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "faq").iterdir() if p.name.startswith(".model-")] == []
    assert registry.get("faq").status in ("running", "stopped")  # the previous record, read as it is
