"""`/v1/files`: training and validation files for fine-tuning jobs, kept under `<home>/files/<file id>/`.

A file is checked with the same reader `assistant finetune validate` uses before anything is kept: one with bad
lines is refused with each line's error. The name the client sends is kept as metadata only; the bytes are stored
as `content` in a folder named by the id the server made, so no name can write anywhere else.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import anyio
from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import FileResponse

from assistant.errors import AssistantError
from assistant.examples import read_examples
from assistant.filenames import safe_name
from assistant.server.errors import APIError, not_found

router = APIRouter()
PURPOSE = "fine-tune"
_ID_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def files_dir(settings) -> Path:
    return settings.home / "files"


def folder_of(settings, file_id: str) -> Path:
    folder = files_dir(settings) / file_id
    if not file_id.startswith("file-") or not set(file_id) <= _ID_CHARS or not (folder / "meta.json").is_file():
        raise not_found("file", file_id)
    return folder


def meta(settings, file_id: str) -> dict:
    return json.loads((folder_of(settings, file_id) / "meta.json").read_text())


def content_path(settings, file_id: str) -> Path:
    """The stored file, with the suffix the example reader goes by (.jsonl or .csv)."""
    return folder_of(settings, file_id) / ("content.csv" if meta(settings, file_id)["format"] == "csv"
                                           else "content.jsonl")


@router.post("/v1/files")
async def upload(request: Request, file: UploadFile, purpose: str = Form(...)):
    settings = request.app.state.server.settings
    if purpose != PURPOSE:
        raise APIError(400, f"purpose {purpose!r} is not supported here; upload training data with "
                       f"purpose={PURPOSE!r}.", param="purpose")
    data = await file.read()
    filename = safe_name(file.filename or "upload.jsonl", "upload.jsonl")
    return await anyio.to_thread.run_sync(_store, settings, filename, data)


def _store(settings, filename: str, data: bytes) -> dict:
    fmt = "csv" if filename.lower().endswith(".csv") else "jsonl"
    root = files_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=root))
    try:
        path = staging / f"content.{fmt}"
        path.write_bytes(data)
        _check(path, filename)
        record = {"id": f"file-{secrets.token_hex(12)}", "object": "file", "bytes": len(data),
                  "created_at": int(time.time()), "filename": filename, "purpose": PURPOSE, "status": "processed",
                  "status_details": None, "format": fmt}
        (staging / "meta.json").write_text(json.dumps(record))
        os.replace(staging, root / record["id"])  # the file appears whole, with its metadata, or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _public(record)


def _check(path: Path, filename: str) -> None:
    try:
        examples, errors = read_examples(path)
    except UnicodeDecodeError:
        raise APIError(400, f"{filename} is not UTF-8 text: training files are JSONL (or CSV).", param="file") from None
    except AssistantError as exc:
        raise APIError(400, str(exc), param="file") from None
    if errors or not examples:
        listed = "; ".join(f"line {e.line}: {e.message}" for e in errors[:20])
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        raise APIError(400, f"Invalid file format for fine-tuning: {filename} has "
                       + (f"{len(errors)} bad line(s): {listed}{more}" if errors else "no examples")
                       + ". Each line must be a JSON object with chat `messages` or prompt/completion.",
                       param="file", code="invalid_file_format")


def _public(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "format"}


@router.get("/v1/files")
async def list_files(request: Request, purpose: str | None = None):
    root = files_dir(request.app.state.server.settings)
    records = [json.loads(p.read_text()) for p in root.glob("file-*/meta.json")] if root.is_dir() else []
    records = sorted((r for r in records if purpose in (None, r["purpose"])), key=lambda r: r["created_at"],
                     reverse=True)
    return {"object": "list", "data": [_public(r) for r in records], "has_more": False}


@router.get("/v1/files/{file_id}")
async def retrieve(file_id: str, request: Request):
    return _public(meta(request.app.state.server.settings, file_id))


@router.get("/v1/files/{file_id}/content")
async def content(file_id: str, request: Request):
    settings = request.app.state.server.settings
    return FileResponse(content_path(settings, file_id), media_type="application/octet-stream",
                        filename=meta(settings, file_id)["filename"])


@router.delete("/v1/files/{file_id}")
async def delete(file_id: str, request: Request):
    shutil.rmtree(folder_of(request.app.state.server.settings, file_id))
    return {"id": file_id, "object": "file", "deleted": True}
