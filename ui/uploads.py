"""Uploaded files → a per-knowledge-base folder under the data home → the ingest pipeline. No Streamlit in here.

Browsers send whatever file name they like, so a name is reduced to one plain component before anything is
written, and the resolved target is checked to lie in the upload folder. Size is checked before a byte is written,
and the type by content (the loaders' own magic-byte check), so a file refused here never reaches the disk.
A file is written aside and renamed into place; one that then fails to ingest is taken away again (a replaced
file is put back), so the folder holds exactly the uploads that made it into the knowledge base.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from assistant.config import Settings
from assistant.filenames import safe_name
from assistant.embeddings import Embedder
from ingest.kb import check_collection_name
from ingest.loaders import SUPPORTED_SUFFIXES, Failure, LoadError, detect_kind
from ingest.pipeline import FileResult, Ingestor, IngestReport, Progress

UPLOAD_TYPES = sorted(suffix.lstrip(".") for suffix in SUPPORTED_SUFFIXES)
_HIDDEN = "."  # temporary and backup files start with it, so a folder ingest (which skips hidden files) never sees them


class Upload(Protocol):
    """What st.file_uploader hands over (streamlit's UploadedFile), or any named binary stream."""

    name: str
    size: int

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class SavedUpload:
    uploaded_as: str  # the name the browser sent (display it as text only)
    name: str  # the sanitised file name: the document id in the knowledge base
    path: Path | None = None  # None when refused
    reason: str | None = None  # a loaders.Failure value when refused
    detail: str | None = None
    backup: Path | None = None  # the file this upload replaced, until the ingest succeeded

    @property
    def refused(self) -> bool:
        return self.path is None


def upload_dir(settings: Settings, collection: str) -> Path:
    return settings.home / "uploads" / check_collection_name(collection)


def save_uploads(files: Iterable[Upload], folder: Path, max_bytes: int, replace: bool = True) -> list[SavedUpload]:
    """Write each acceptable file into `folder`. `replace`: a file of the same name already there is replaced (the
    document is then updated); otherwise the upload gets a numbered name. Two uploads of one batch never collide."""
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    return [_save(file, folder, max_bytes, replace, taken) for file in files]


def _save(file: Upload, folder: Path, max_bytes: int, replace: bool, taken: set[str]) -> SavedUpload:
    wanted = safe_name(file.name)
    limit = f"the {max_bytes / 2**20:.0f} MiB limit (ASSISTANT_MAX_FILE_MB)"
    if file.size > max_bytes:  # the size the upload declares: refused before reading it
        return SavedUpload(file.name, wanted, reason=Failure.TOO_LARGE.value,
                           detail=f"{file.size / 2**20:.1f} MiB is over {limit}")
    if hasattr(file, "seek"):
        file.seek(0)  # streamlit keeps the object between reruns; an earlier run may have read it
    data = file.read(max_bytes + 1)
    if len(data) > max_bytes:  # declared small, is not
        return SavedUpload(file.name, wanted, reason=Failure.TOO_LARGE.value, detail=f"over {limit}")
    if not data:
        return SavedUpload(file.name, wanted, reason=Failure.EMPTY.value, detail="the file is 0 bytes")
    try:
        detect_kind(Path(wanted), data)
    except LoadError as exc:
        return SavedUpload(file.name, wanted, reason=exc.reason.value, detail=exc.detail)
    name = wanted if replace and wanted not in taken else _free_name(folder, wanted, taken)
    taken.add(name)
    target = folder / name
    if target.resolve().parent != folder.resolve():  # a symlink planted in the folder, or a name we failed to tame
        return SavedUpload(file.name, name, reason=Failure.UNSUPPORTED.value, detail="unsafe file name")
    try:
        backup = _write(folder, target, data)
    except OSError as exc:
        return SavedUpload(file.name, name, reason="write_error", detail=f"{type(exc).__name__}: {exc}")
    return SavedUpload(file.name, name, target, backup=backup)


def _free_name(folder: Path, name: str, taken: set[str]) -> str:
    stem, dot, suffix = name.rpartition(".")
    stem, suffix = (stem, f".{suffix}") if dot else (name, "")
    candidate, number = name, 1
    while candidate in taken or (folder / candidate).exists():
        number += 1
        candidate = f"{stem} ({number}){suffix}"
    return candidate


def _write(folder: Path, target: Path, data: bytes) -> Path | None:
    """Write aside, then rename into place (no reader sees half a file); returns where the replaced file waits."""
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f"{_HIDDEN}upload-", suffix=".part")
    backup = None
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        if target.exists():
            backup = folder / f"{_HIDDEN}replaced-{uuid.uuid4().hex[:12]}-{target.name}"
            os.replace(target, backup)
        os.replace(temporary, target)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
        if backup is not None and not target.exists():
            os.replace(backup, target)
        raise
    return backup


def _settle(saved: Sequence[SavedUpload], report: IngestReport) -> None:
    """Keep what was ingested; take away what failed (putting back the file it replaced, whose chunks stayed)."""
    failed = {result.doc_id for result in report.failed}
    for upload in saved:
        if upload.path is None:
            continue
        if upload.name in failed:
            if upload.backup is not None:
                os.replace(upload.backup, upload.path)
            else:
                upload.path.unlink(missing_ok=True)
        elif upload.backup is not None:
            upload.backup.unlink(missing_ok=True)


@dataclass(frozen=True)
class UploadOutcome:
    saved: list[SavedUpload]
    report: IngestReport  # the refused uploads come first, as failures

    def rows(self) -> list[dict]:
        """One row per uploaded file for a table: its name, what the browser called it, status and reason."""
        refused = [upload for upload in self.saved if upload.refused]
        sent = {upload.name: upload.uploaded_as for upload in self.saved if not upload.refused}
        names = [upload.uploaded_as for upload in refused] + [sent.get(r.doc_id, r.doc_id)
                                                               for r in self.report.results[len(refused):]]
        return [{"document": r.doc_id, "uploaded as": name, "status": r.status, "chunks": r.chunks,
                 "reason": r.reason or "", "detail": r.detail or ""} for r, name in zip(self.report.results, names)]


def ingest_uploads(settings: Settings, collection: str, files: Iterable[Upload], *, replace: bool = True,
                   embedder: Embedder | None = None, progress: Progress | None = None) -> UploadOutcome:
    """Save the uploads and ingest the accepted ones into `collection`; the refused ones are reported as failed."""
    saved = save_uploads(files, upload_dir(settings, collection), int(settings.max_file_mb * 2**20), replace)
    accepted = [upload for upload in saved if not upload.refused]
    report = IngestReport(collection)
    try:
        if accepted:
            report = Ingestor(settings, embedder=embedder).run([u.path for u in accepted], collection=collection,
                                                                progress=progress)
    except BaseException:  # the store was busy or unreachable: nothing of this batch stays
        _settle(accepted, IngestReport(collection, [FileResult(u.name, "failed") for u in accepted]))
        raise
    _settle(accepted, report)
    report.results[:0] = [FileResult(u.name, "failed", reason=u.reason, detail=u.detail) for u in saved if u.refused]
    return UploadOutcome(saved, report)


def forget_upload(settings: Settings, collection: str, doc_id: str) -> bool:
    """Delete the uploaded copy of a removed document, if it came from an upload; True when one went."""
    folder = upload_dir(settings, collection)
    if safe_name(doc_id) != doc_id:
        return False  # not a name an upload could have got (a document ingested from a folder, say)
    path = folder / doc_id
    if path.resolve().parent != folder.resolve() or not path.is_file():
        return False
    path.unlink()
    return True
