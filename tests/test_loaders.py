"""Every supported format round-trips with its provenance; every kind of bad file gets its typed failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.loaders import Failure, Limits, LoadError, load_file
from tests import docmaker

PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


def failure_of(path: Path, limits: Limits = Limits()) -> Failure:
    with pytest.raises(LoadError) as caught:
        load_file(path, limits)
    assert caught.value.detail  # always says why, not just what
    return caught.value.reason


def test_text(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Routers forward packets.\n")
    assert [s.text for s in load_file(path)] == ["Routers forward packets.\n"]


def test_markdown_is_marked_for_heading_aware_chunking(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text("# Guide\n\nIntro.\n\n## Setup\n\nPlug it in.\n")
    (section,) = load_file(path)
    assert section.markdown and "## Setup" in section.text


def test_html_keeps_heading_paths_and_drops_scripts(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text("<html><head><script>var x = 1;</script></head><body><h1>Help</h1><p>Intro text.</p>"
                    "<h2>Reset</h2><p>Hold the button.</p><table><tr><th>Light</th><th>Meaning</th></tr>"
                    "<tr><td>Red</td><td>Reset</td></tr></table><h1>Other</h1><ul><li>Item one</li></ul></body></html>")
    sections = load_file(path)
    assert [(s.location, s.text) for s in sections] == [
        ("Help", "Intro text."),
        ("Help > Reset", "Hold the button.\n\nLight | Meaning\n\nRed | Reset"),
        ("Other", "Item one"),
    ]
    assert all("var x" not in s.text for s in sections)


def test_pdf_pages_are_locations(tmp_path: Path) -> None:
    path = docmaker.pdf(tmp_path / "manual.pdf", ["First page about routers.", "Second page about switches."])
    sections = load_file(path)
    assert [s.location for s in sections] == ["page 1", "page 2"]
    assert "switches" in sections[1].text


def test_docx_headings_and_tables(tmp_path: Path) -> None:
    path = docmaker.docx(tmp_path / "policy.docx",
                         [(1, "Warranty"), (0, "Two years."), (2, "Claims"), (0, "Contact support.")],
                         table=[["Plan", "Years"], ["Basic", "2"]])
    sections = load_file(path)
    assert [(s.location, s.text) for s in sections] == [
        ("Warranty", "Two years."), ("Warranty > Claims", "Contact support."), ("table 1", "Plan | Years\nBasic | 2")]


def test_csv_rows(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text('question,answer\nWhat is DNS?,"Names to addresses, like a phone book."\nWhat is NAT?,Sharing one IP.\n')
    sections = load_file(path)
    assert [s.location for s in sections] == ["row 1", "row 2"]
    assert sections[0].text == "question: What is DNS?\nanswer: Names to addresses, like a phone book."


def test_json_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "items.json").write_text(json.dumps([{"title": "A", "body": "alpha"}, {"title": "B", "body": "beta"}]))
    assert [(s.location, s.text) for s in load_file(tmp_path / "items.json")] == [
        ("item 1", "title: A\nbody: alpha"), ("item 2", "title: B\nbody: beta")]
    (tmp_path / "lines.jsonl").write_text('{"q": "one"}\n\n{"q": "two"}\n')
    assert [s.location for s in load_file(tmp_path / "lines.jsonl")] == ["line 1", "line 3"]
    (tmp_path / "bad.jsonl").write_text('{"q": "one"}\n{not json\n')
    with pytest.raises(LoadError, match="line 2"):
        load_file(tmp_path / "bad.jsonl")


@pytest.mark.parametrize(("raw", "expected"), [
    ("Café crème – naïve".encode("cp1252"), "Café crème – naïve"),
    ("Grüße aus Köln".encode("utf-16"), "Grüße aus Köln"),
    ("\ufeffBOM first".encode("utf-8"), "BOM first"),
    ("plain ünïcödé".encode("utf-8"), "plain ünïcödé"),
])
def test_encodings(tmp_path: Path, raw: bytes, expected: str) -> None:
    path = tmp_path / "text.txt"
    path.write_bytes(raw)
    assert load_file(path)[0].text == expected


def test_encrypted_pdf(tmp_path: Path) -> None:
    assert failure_of(docmaker.encrypted_pdf(tmp_path / "locked.pdf", "secret plans")) is Failure.ENCRYPTED


def test_truncated_pdf(tmp_path: Path) -> None:
    whole = docmaker.pdf(tmp_path / "whole.pdf", ["Some text " * 50] * 3).read_bytes()
    (tmp_path / "cut.pdf").write_bytes(whole[: len(whole) // 3])
    assert failure_of(tmp_path / "cut.pdf") is Failure.CORRUPT


def test_not_a_pdf_at_all(tmp_path: Path) -> None:
    (tmp_path / "fake.pdf").write_text("just text pretending")
    assert failure_of(tmp_path / "fake.pdf") is Failure.CORRUPT


def test_empty_and_whitespace_files(tmp_path: Path) -> None:
    (tmp_path / "zero.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_text("  \n\t\n   ")
    assert failure_of(tmp_path / "zero.txt") is Failure.EMPTY
    assert failure_of(tmp_path / "blank.md") is Failure.EMPTY


def test_binary_content_behind_a_text_extension(tmp_path: Path) -> None:
    (tmp_path / "picture.txt").write_bytes(PNG_HEADER + b"\x00" * 100)
    (tmp_path / "blob.txt").write_bytes(bytes(range(256)) * 4)
    assert failure_of(tmp_path / "picture.txt") is Failure.UNSUPPORTED
    assert failure_of(tmp_path / "blob.txt") is Failure.DECODE_ERROR


def test_unsupported_extension(tmp_path: Path) -> None:
    (tmp_path / "notes.xyz").write_text("text")
    assert failure_of(tmp_path / "notes.xyz") is Failure.UNSUPPORTED


def test_too_large(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("x" * 5000)
    assert failure_of(tmp_path / "big.txt", Limits(max_file_bytes=1000)) is Failure.TOO_LARGE


def test_docx_zip_bomb_is_refused_quickly(tmp_path: Path) -> None:
    bomb = docmaker.docx_bomb(tmp_path / "bomb.docx", unpacked_mib=300)
    assert bomb.stat().st_size < 2**20  # small on disk
    # Refused from the declared sizes, before inflating anything (python-docx would report zeros as corrupt).
    assert failure_of(bomb) is Failure.TOO_LARGE  # with the default limits


def test_docx_with_too_many_entries(tmp_path: Path) -> None:
    path = docmaker.many_entries_docx(tmp_path / "many.docx", 50)
    assert failure_of(path, Limits(max_archive_entries=20)) is Failure.TOO_LARGE


def test_broken_docx(tmp_path: Path) -> None:
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04" + b"garbage" * 10)
    assert failure_of(tmp_path / "broken.docx") is Failure.CORRUPT
