"""Files → text sections with provenance, or a typed failure.

Each loader returns `Section`s (text plus a human location: "page 3", "Install > Linux", "row 12"). The type is
decided by content first (magic bytes), the extension second, so a PNG renamed .txt is refused, not indexed.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import filetype


class Failure(StrEnum):
    ENCRYPTED = "encrypted"
    CORRUPT = "corrupt"
    EMPTY = "empty"
    TOO_LARGE = "too_large"
    UNSUPPORTED = "unsupported"
    DECODE_ERROR = "decode_error"
    UNREADABLE = "unreadable"  # the OS refused: permissions, a broken link or a link loop, an I/O error
    NOT_A_FILE = "not_a_file"  # a pipe, socket or device


class LoadError(Exception):
    def __init__(self, reason: Failure, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Section:
    text: str
    location: str = ""
    markdown: bool = False  # the chunker splits Markdown at its headings first


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 50 * 2**20
    max_unpacked_bytes: int = 200 * 2**20
    max_archive_entries: int = 5000


TEXT_KINDS = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown", ".html": "html",
              ".htm": "html", ".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
SUPPORTED_SUFFIXES = frozenset({*TEXT_KINDS, ".pdf", ".docx"})
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy Office and password-protected OOXML files


def load_file(path: Path, limits: Limits = Limits()) -> list[Section]:
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise LoadError(Failure.TOO_LARGE, f"{size / 2**20:.1f} MiB is over the "
                            f"{limits.max_file_bytes / 2**20:.0f} MiB limit (ASSISTANT_MAX_FILE_MB)")
        if size == 0:
            raise LoadError(Failure.EMPTY, "the file is 0 bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(Failure.UNREADABLE, f"{exc.strerror or exc}; check the file and its permissions") from None
    sections = [s for s in LOADERS[detect_kind(path, data)](data, limits) if s.text.strip()]
    if not sections:
        raise LoadError(Failure.EMPTY, "no text found")
    return sections


def detect_kind(path: Path, data: bytes) -> str:
    suffix = path.suffix.lower()
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(_OLE_MAGIC) and suffix == ".docx":
        raise LoadError(Failure.ENCRYPTED, "a password-protected Office document; save it without a password")
    if suffix == ".pdf":
        raise LoadError(Failure.CORRUPT, "named .pdf but does not start with a PDF header")
    if data.startswith(b"PK\x03\x04"):
        if suffix == ".docx":
            return "docx"
        raise LoadError(Failure.UNSUPPORTED, f"a zip archive named {suffix or 'without extension'}")
    guessed = filetype.guess(data[:8192])
    if guessed is not None:
        raise LoadError(Failure.UNSUPPORTED, f"the content is {guessed.mime}, not {suffix or 'text'}")
    if suffix == ".docx":
        raise LoadError(Failure.CORRUPT, "named .docx but is not a zip container")
    if suffix not in TEXT_KINDS:
        raise LoadError(Failure.UNSUPPORTED, f"{suffix or 'no extension'} is not a supported type "
                        f"({', '.join(sorted(SUPPORTED_SUFFIXES))})")
    return TEXT_KINDS[suffix]


def decode_text(data: bytes) -> str:
    """UTF-8/16/32 with a BOM, then UTF-8, then cp1252; anything else (or binary) is a decode_error."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
                          (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise LoadError(Failure.DECODE_ERROR, f"invalid {encoding} at byte {exc.start}") from None
    if b"\x00" in data[:65536]:
        raise LoadError(Failure.DECODE_ERROR, "binary content (NUL bytes) in a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise LoadError(Failure.DECODE_ERROR, f"neither UTF-8 nor cp1252 (byte {exc.start})") from None


def _text(data: bytes, limits: Limits) -> list[Section]:
    return [Section(decode_text(data))]


def _markdown(data: bytes, limits: Limits) -> list[Section]:
    return [Section(decode_text(data), markdown=True)]


class _HeadingOutline:
    """Collects blocks of text under the current heading path ("Install > Linux") of HTML or Word documents."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self._path: list[tuple[int, str]] = []
        self._blocks: list[str] = []

    def heading(self, level: int, text: str) -> None:
        self._flush()
        self._path = [(lvl, t) for lvl, t in self._path if lvl < level] + [(level, text)]

    def block(self, text: str) -> None:
        self._blocks.append(text)

    def finish(self) -> list[Section]:
        self._flush()
        return self.sections

    def _flush(self) -> None:
        if self._blocks:
            self.sections.append(Section("\n\n".join(self._blocks), " > ".join(t for _, t in self._path)))
            self._blocks = []


def _html(data: bytes, limits: Limits) -> list[Section]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "footer"]):
        tag.decompose()
    outline = _HeadingOutline()
    for element in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "tr", "dt",
                                  "dd", "caption"]):
        if element.find_parent(["p", "li", "pre", "blockquote", "tr", "dd"]):
            continue  # its text is already part of the enclosing block
        if element.name == "tr":
            text = " | ".join(cell.get_text(" ", strip=True) for cell in element.find_all(["th", "td"]))
        else:
            text = element.get_text(" ", strip=True)
        if not text:
            continue
        if element.name[0] == "h" and element.name[1:].isdigit():
            outline.heading(int(element.name[1]), text)
        else:
            outline.block(text)
    sections = outline.finish()
    if not sections and soup.get_text(strip=True):
        sections.append(Section(soup.get_text("\n", strip=True)))
    return sections


def _pdf(data: bytes, limits: Limits) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its repair warnings are ours to report, as a failure

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):  # files with only an owner password open fine
            raise LoadError(Failure.ENCRYPTED, "the PDF needs a password; save an unprotected copy")
        return [Section(page.extract_text() or "", f"page {number}")
                for number, page in enumerate(reader.pages, start=1)]
    except FileNotDecryptedError:
        raise LoadError(Failure.ENCRYPTED, "the PDF needs a password; save an unprotected copy") from None
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001  (pypdf fails in many ways on a broken file: each is a corrupt file)
        raise LoadError(Failure.CORRUPT, f"unreadable PDF ({type(exc).__name__}: {exc})") from None


def _docx(data: bytes, limits: Limits) -> list[Section]:
    import docx

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise LoadError(Failure.CORRUPT, f"broken zip container ({exc})") from None
    entries = archive.infolist()
    # Declared sizes bound the work: zipfile never inflates an entry past its declared size.
    unpacked = sum(entry.file_size for entry in entries)
    if len(entries) > limits.max_archive_entries or unpacked > limits.max_unpacked_bytes:
        raise LoadError(Failure.TOO_LARGE, f"unpacks to {unpacked / 2**20:.0f} MiB in {len(entries)} entries, over "
                        "the limits (ASSISTANT_MAX_UNPACKED_MB, ASSISTANT_MAX_ARCHIVE_ENTRIES); a zip bomb?")
    try:
        return _docx_sections(docx.Document(io.BytesIO(data)))
    except Exception as exc:  # noqa: BLE001  (zip, zlib, lxml and python-docx each fail their own way: all corrupt)
        raise LoadError(Failure.CORRUPT, f"not a readable .docx ({type(exc).__name__}: {exc})") from None


def _docx_sections(document) -> list[Section]:
    outline = _HeadingOutline()
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if style.startswith("Heading") and style[7:].strip().isdigit() and text:
            outline.heading(int(style[7:]), text)
        elif text:
            outline.block(text)
    sections = outline.finish()
    for number, table in enumerate(document.tables, start=1):
        rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
        sections.append(Section("\n".join(rows), f"table {number}"))
    return sections


def _record_text(record: object) -> str:
    if isinstance(record, dict):
        return "\n".join(f"{key}: {_record_text(value)}" for key, value in record.items())
    if isinstance(record, list):
        return "\n".join(_record_text(item) for item in record)
    return "" if record is None else str(record)


def _csv(data: bytes, limits: Limits) -> list[Section]:
    text = decode_text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.DictReader(io.StringIO(text), dialect=dialect))
    except csv.Error as exc:
        raise LoadError(Failure.CORRUPT, f"unreadable CSV ({exc})") from None
    return [Section(_record_text({k: v for k, v in row.items() if k is not None and v}), f"row {number}")
            for number, row in enumerate(rows, start=1)]


def _json(data: bytes, limits: Limits) -> list[Section]:
    try:
        value = json.loads(decode_text(data))
        if isinstance(value, list):
            return [Section(_record_text(item), f"item {number}") for number, item in enumerate(value, start=1)]
        return [Section(_record_text(value))]
    except json.JSONDecodeError as exc:
        raise LoadError(Failure.CORRUPT, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise LoadError(Failure.CORRUPT, _TOO_DEEP) from None


def _jsonl(data: bytes, limits: Limits) -> list[Section]:
    sections = []
    for number, line in enumerate(decode_text(data).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            sections.append(Section(_record_text(json.loads(line)), f"line {number}"))
        except json.JSONDecodeError as exc:
            raise LoadError(Failure.CORRUPT, f"line {number} is not valid JSON: {exc.msg}") from None
        except RecursionError:
            raise LoadError(Failure.CORRUPT, f"line {number}: {_TOO_DEEP}") from None
    return sections


# Python's JSON parser (and _record_text) recurse once per level of nesting, and stop at the interpreter's limit.
_TOO_DEEP = f"JSON nested more than about {sys.getrecursionlimit()} levels deep"


LOADERS: dict[str, Callable[[bytes, Limits], list[Section]]] = {
    "text": _text, "markdown": _markdown, "html": _html, "pdf": _pdf, "docx": _docx, "csv": _csv, "json": _json,
    "jsonl": _jsonl,
}
