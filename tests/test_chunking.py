"""Properties of the chunker, checked by hypothesis over generated texts."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.chunking import Chunker, chunk_id
from ingest.loaders import Section
from tests.fakes import HashingEmbedder

TOKENIZE = HashingEmbedder().tokenize
SIZE, OVERLAP = 48, 12
CHUNKER = Chunker(SIZE, OVERLAP, TOKENIZE)

words = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=1, max_size=12)
sentence = st.lists(words, min_size=1, max_size=25).map(lambda ws: " ".join(ws) + ".")

paragraph = st.lists(sentence, min_size=1, max_size=8).map(" ".join)
documents = st.lists(paragraph, min_size=1, max_size=6).map("\n\n".join)
headings = st.lists(st.tuples(st.integers(1, 3), words, paragraph), min_size=1, max_size=5).map(
    lambda parts: "\n".join(f"{'#' * level} {title}\n{body}" for level, title, body in parts))

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_invariants(text: str, markdown: bool) -> None:
    chunks = CHUNKER.chunk("doc.md", [Section(text, markdown=markdown)])
    covered = [False] * len(text)
    for chunk in chunks:
        assert chunk.text.strip(), "no empty chunks"
        assert text[chunk.start:chunk.end] == chunk.text, "offsets point at the chunk's text"
        assert len(TOKENIZE(chunk.text)) <= SIZE, "size bound"
        for i in range(chunk.start, chunk.end):
            covered[i] = True
    missing = [i for i, c in enumerate(text) if not c.isspace() and not covered[i]]
    assert not missing, f"text not in any chunk: {text[missing[0]:missing[0] + 30]!r}"
    for before, after in zip(chunks, chunks[1:]):
        if after.start < before.end and after.location == before.location:
            assert len(TOKENIZE(text[after.start:before.end])) <= OVERLAP, "overlap bound"
    again = CHUNKER.chunk("doc.md", [Section(text, markdown=markdown)])
    assert [(c.id, c.text) for c in again] == [(c.id, c.text) for c in chunks], "deterministic"
    assert len({c.id for c in chunks}) == len(chunks), "ids unique"


@PROPERTY
@given(documents)
def test_plain_text_invariants(text: str) -> None:
    check_invariants(text, markdown=False)


@PROPERTY
@given(headings)
def test_markdown_invariants(text: str) -> None:
    check_invariants(text, markdown=True)


def test_markdown_chunks_carry_their_heading_path() -> None:
    text = "# Guide\nIntro.\n## Install\nRun it.\n### Linux\nUse apt.\n# FAQ\nAsk us."
    chunks = CHUNKER.chunk("guide.md", [Section(text, markdown=True)])
    assert [c.location for c in chunks] == ["Guide", "Guide > Install", "Guide > Install > Linux", "FAQ"]


def test_ids_depend_on_document_content_and_position() -> None:
    assert chunk_id("a.md", "text", 0) == chunk_id("a.md", "text", 0)
    assert len({chunk_id("a.md", "text", 0), chunk_id("b.md", "text", 0), chunk_id("a.md", "text!", 0),
                chunk_id("a.md", "text", 1)}) == 4


def test_section_locations_pass_through() -> None:
    chunks = CHUNKER.chunk("m.pdf", [Section("Page one text.", "page 1"), Section("Page two text.", "page 2")])
    assert [(c.location, c.index) for c in chunks] == [("page 1", 0), ("page 2", 1)]
    assert re.fullmatch(r"[0-9a-f]{32}", chunks[0].id)
