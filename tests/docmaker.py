"""Builds real documents for tests: multi-page PDFs, Word files with headings, and broken or hostile variants."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path


def pdf(path: Path, pages: list[str]) -> Path:
    from fpdf import FPDF

    document = FPDF()
    document.set_font("Helvetica", size=12)
    for text in pages:
        document.add_page()
        document.multi_cell(0, 8, text)
    document.output(str(path))
    return path


def encrypted_pdf(path: Path, text: str, password: str = "secret") -> Path:
    from pypdf import PdfReader, PdfWriter

    plain = pdf(path.with_suffix(".plain.pdf"), [text])
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    with path.open("wb") as handle:
        writer.write(handle)
    plain.unlink()
    return path


def docx(path: Path, outline: list[tuple[int, str]], table: list[list[str]] | None = None) -> Path:
    """outline: (heading level, text) pairs; level 0 is a body paragraph."""
    import docx as python_docx

    document = python_docx.Document()
    for level, text in outline:
        if level:
            document.add_heading(text, level=level)
        else:
            document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    document.save(str(path))
    return path


def docx_bomb(path: Path, unpacked_mib: int = 300) -> Path:
    """A .docx whose document.xml inflates to `unpacked_mib` MiB of zeros (a few hundred KiB on disk)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as entry:
            block = b"\0" * 2**20
            for _ in range(unpacked_mib):
                entry.write(block)
    path.write_bytes(buffer.getvalue())
    return path


def many_entries_docx(path: Path, entries: int) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(entries):
            archive.writestr(f"word/media/{index}.xml", "")
    return path
