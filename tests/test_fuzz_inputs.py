"""Fuzzing the readers of user files (reliability claim 4): whatever bytes a file holds, a loader returns sections or
raises LoadError (a typed status), and the example and evaluation readers return rows and line errors or raise
AssistantError — never anything else. Random bytes, text in odd encodings and shapes, and real PDF, Word, CSV and
JSON files with bytes flipped, cut or spliced.

FUZZ_EXAMPLES sets the inputs per target (a few dozen here; benchmarks/reliability/fuzz_inputs.py runs thousands).
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.errors import AssistantError
from assistant.evaluation.evalset import read_eval
from assistant.examples import read_examples
from ingest.loaders import SUPPORTED_SUFFIXES, LoadError, load_file
from tests import docmaker

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("FUZZ_EXAMPLES"),
                suppress_health_check=list(HealthCheck))
inputs = {"loaders": 0, "readers": 0}  # counted for the reliability script's table


@cache
def seeds() -> dict[str, bytes]:
    """One good file of each kind, to mutate."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz-seeds-"))
    docmaker.pdf(folder / "a.pdf", ["Routers forward packets.", "Switches connect devices."])
    docmaker.docx(folder / "a.docx", [(1, "Setup"), (0, "Plug in the modem.")], table=[["port", "use"], ["1", "WAN"]])
    seeds = {suffix: (folder / f"a{suffix}").read_bytes() for suffix in (".pdf", ".docx")}
    seeds[".csv"] = b"question,answer,sources\nWhat is DNS?,Names to addresses.,dns.md\n"
    seeds[".json"] = json.dumps([{"q": "What is DHCP?", "a": ["leases", {"x": 1}]}]).encode()
    seeds[".jsonl"] = b'{"prompt": "What is NAT?", "completion": "Address translation."}\n'
    seeds[".html"] = b"<html><h1>Wi-Fi</h1><p>Use 5 GHz.</p><script>x()</script></html>"
    seeds[".md"] = "# Title\nSome *text* \u00e9\n## Sub\nMore.".encode()
    return seeds


@st.composite
def mutated(draw, suffix: str) -> bytes:
    """A seed of this kind (or of another) with bytes flipped, a piece cut out, or the file cut short."""
    data = bytearray(draw(st.sampled_from(sorted(seeds().items())), label="seed")[1]
                     if draw(st.booleans()) else seeds().get(suffix, b"text"))
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if not data:
            break
        if action == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del data[position:position + draw(st.integers(1, 64))]
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
        else:
            del data[position:]
    return bytes(data)


def odd_text() -> st.SearchStrategy[bytes]:
    deep = st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n)
    objects = st.integers(1, 5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)
    encoded = st.tuples(st.text(), st.sampled_from(["utf-8", "utf-16", "utf-32", "cp1252", "latin-1"])).map(
        lambda pair: pair[0].encode(pair[1], errors="ignore"))
    return st.one_of(st.binary(max_size=4096), encoded, deep, objects)


def file_with(folder: Path, suffix: str, data: bytes) -> Path:
    path = folder / f"input{suffix}"
    path.write_bytes(data)
    return path


@FUZZ
@given(suffix=st.sampled_from(sorted(SUPPORTED_SUFFIXES | {".bin", ""})), data=st.data())
def test_a_loader_returns_sections_or_a_typed_failure(suffix: str, data: st.DataObject) -> None:
    content = data.draw(st.one_of(odd_text(), mutated(suffix)), label="content")
    inputs["loaders"] += 1
    with tempfile.TemporaryDirectory() as folder:
        try:
            sections = load_file(file_with(Path(folder), suffix, content))
        except LoadError:
            return
    assert sections and all(isinstance(s.text, str) and s.text.strip() for s in sections)


@FUZZ
@given(suffix=st.sampled_from([".jsonl", ".csv"]), data=st.data())
def test_the_example_and_evaluation_readers_return_rows_or_a_clear_error(suffix: str, data: st.DataObject) -> None:
    content = data.draw(st.one_of(odd_text(), mutated(suffix)), label="content")
    inputs["readers"] += 1
    with tempfile.TemporaryDirectory() as folder:
        path = file_with(Path(folder), suffix, content)
        for read in (read_examples, read_eval):
            try:
                rows, errors = read(path)
            except AssistantError:
                continue
            assert all(isinstance(e.line, int) for e in errors) and isinstance(rows, list)
