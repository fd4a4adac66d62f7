"""Sections → chunks with stable ids, using llama-index's node parsers.

Markdown is first cut at its headings (MarkdownNodeParser) so chunks carry their heading path; everything is then
split by sentences with overlap (SentenceSplitter), measured in the embedder's own tokens so no chunk is silently
truncated by the embedder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from llama_index.core import Document
from llama_index.core.node_parser import MarkdownNodeParser, SentenceSplitter

from ingest.loaders import Section


@dataclass(frozen=True)
class Chunk:
    id: str
    doc_id: str
    index: int
    text: str
    location: str
    start: int  # character offsets of the chunk inside its section's text
    end: int

    @property
    def metadata(self) -> dict[str, str | int]:
        return {"doc_id": self.doc_id, "index": self.index, "location": self.location, "start": self.start,
                "end": self.end}


def document_id(path: Path, root: Path) -> str:
    """The path relative to the knowledge-base root, as listed there: stable across machines and re-ingests. Not
    resolved: a linked file is named by its link (whose target may lie outside the root, or loop)."""
    return path.relative_to(root).as_posix()


def chunk_id(doc_id: str, text: str, index: int) -> str:
    """Same document, same content, same position → same id; so re-ingesting never duplicates."""
    content = hashlib.sha256(text.encode()).hexdigest()
    return hashlib.sha256(f"{doc_id}\x00{content}\x00{index}".encode()).hexdigest()[:32]


class Chunker:
    def __init__(self, chunk_size: int, chunk_overlap: int, tokenize: Callable[[str], list]) -> None:
        self.splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap, tokenizer=tokenize)
        self.markdown = MarkdownNodeParser()

    def chunk(self, doc_id: str, sections: Iterable[Section]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in sections:
            for location, start, text in self._parts(section):
                for piece_start, piece in _locate(text, self.splitter.split_text(text)):
                    offset = start + piece_start
                    chunks.append(Chunk(chunk_id(doc_id, piece, len(chunks)), doc_id, len(chunks), piece, location,
                                        offset, offset + len(piece)))
        return chunks

    def _parts(self, section: Section) -> Iterable[tuple[str, int, str]]:
        """(location, offset in the section, text) for each heading-delimited part of the section."""
        if not section.markdown:
            yield section.location, 0, section.text
            return
        nodes = self.markdown.get_nodes_from_documents([Document(text=section.text)])
        texts = [node.get_content() for node in nodes]
        for (offset, text), node in zip(_locate(section.text, texts), nodes):
            yield _heading_path(node.metadata.get("header_path", ""), text), offset, text


def _heading_path(parents: str, text: str) -> str:
    """"/Install/" + "## Linux\n..." → "Install > Linux"."""
    path = [part for part in parents.split("/") if part]
    first_line = text.lstrip().split("\n", 1)[0]
    if first_line.startswith("#"):
        path.append(first_line.lstrip("#").strip())
    return " > ".join(path)


def _locate(text: str, pieces: list[str]) -> list[tuple[int, str]]:
    """Where each piece starts in text. The splitters only cut (and strip) text, never rewrite it, and pieces come
    in order, each starting after the one before. In repetitive text a piece occurs at several places: a forward pass
    takes the earliest feasible place (so every later piece is still found), then a backward pass moves each piece
    as late as it can go before its successor, which restores where overlapping chunks really were."""
    starts: list[int] = []
    for piece in pieces:
        position = text.find(piece, starts[-1] + 1 if starts else 0)
        if position < 0:
            raise ValueError(f"chunk not found in its source text: {piece[:40]!r}")
        starts.append(position)
    limit = len(text)
    for i in range(len(pieces) - 1, -1, -1):
        starts[i] = text.rfind(pieces[i], starts[i], limit - 1 + len(pieces[i]))
        limit = starts[i]
    return list(zip(starts, pieces))
