"""The knowledge-base page through Streamlit's AppTest, and the upload handling (ui/uploads.py) it stands on."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from assistant.config import load_settings
from assistant.filenames import safe_name
from ingest.pipeline import Ingestor
from tests import docmaker
from tests.fakes import HashingEmbedder
from ui.uploads import ingest_uploads, save_uploads

PAGE = str(Path(__file__).resolve().parents[1] / "ui" / "views" / "knowledge.py")
GUIDE = b"# Router guide\n\nHold the reset button for ten seconds to restore the factory settings.\n"
PDF_MIME = "application/pdf"


@pytest.fixture(autouse=True)
def fake_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    st.cache_resource.clear()  # the page keeps its embedder in a resource cache
    monkeypatch.setattr("assistant.embeddings.SentenceTransformerEmbedder.from_settings",
                        classmethod(lambda cls, settings: HashingEmbedder()))


class Upload(io.BytesIO):
    """What st.file_uploader hands the page: a named, sized binary stream."""

    def __init__(self, name: str, data: bytes, size: int | None = None) -> None:
        super().__init__(data)
        self.name = name
        self.size = len(data) if size is None else size


def page() -> AppTest:
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not app.exception
    return app


def button(app: AppTest, label: str):
    return next(b for b in app.button if b.label == label)


def upload(app: AppTest, *files: tuple[str, bytes, str]) -> AppTest:
    app.file_uploader[0].set_value(list(files)).run()
    button(app, "Ingest").click().run()
    assert not app.exception
    return app


def report(app: AppTest) -> dict[str, dict]:
    return {row["uploaded as"]: row for row in app.dataframe[0].value.to_dict("records")}


def uploads_dir(home: Path, collection: str = "knowledge") -> Path:
    return home / "uploads" / collection


def seed(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "reset.md").write_text("# Reset\n\nHold the reset button for ten seconds.")
    (kb / "vpn.md").write_text("# VPN\n\nThe VPN uses WireGuard on port 51820.")
    Ingestor(load_settings(), embedder=HashingEmbedder()).run([kb])


# --- the page -------------------------------------------------------------------------------------------------------

def test_good_and_bad_uploads_are_reported_with_reasons(isolated_environment: Path, tmp_path: Path) -> None:
    real_pdf = docmaker.pdf(tmp_path / "manual.pdf", ["The VPN uses WireGuard.", "Ports: 51820."]).read_bytes()
    app = upload(page(), ("guide.md", GUIDE, "text/markdown"), ("manual.pdf", real_pdf, PDF_MIME),
                 ("fake.pdf", b"just text pretending to be a PDF", PDF_MIME),
                 ("broken.pdf", b"%PDF-1.7\n" + b"\x00garbage" * 50, PDF_MIME))
    rows = report(app)
    assert rows["guide.md"]["status"] == rows["manual.pdf"]["status"] == "added"
    assert rows["manual.pdf"]["chunks"] >= 2  # one section per page
    assert (rows["fake.pdf"]["status"], rows["fake.pdf"]["reason"]) == ("failed", "corrupt")
    assert "PDF header" in rows["fake.pdf"]["detail"]
    assert (rows["broken.pdf"]["status"], rows["broken.pdf"]["reason"]) == ("failed", "corrupt")
    assert app.status[0].state == "error" and "2 added" in app.status[0].label
    assert "2 file(s) were not ingested" in app.warning[0].value
    # only what made it into the knowledge base stays on disk
    assert sorted(p.name for p in uploads_dir(isolated_environment).iterdir()) == ["guide.md", "manual.pdf"]
    listed = app.dataframe[1].value.to_dict("records")
    assert {row["document"]: row["chunks"] for row in listed} == {"guide.md": 1, "manual.pdf": rows["manual.pdf"]["chunks"]}

    upload(app, ("guide.md", GUIDE + b"\nNew paragraph.\n", "text/markdown"))
    assert report(app)["guide.md"]["status"] == "updated"


def test_a_hostile_file_name_lands_inside_the_upload_dir(isolated_environment: Path, tmp_path: Path) -> None:
    app = upload(page(), ("../../evil.txt", b"Nothing to see here.", "text/plain"))
    row = report(app)["../../evil.txt"]
    assert (row["document"], row["status"]) == ("evil.txt", "added")
    assert app.status[0].state == "complete" and app.status[0].label.startswith("Ingested into knowledge: 1 added")
    assert (uploads_dir(isolated_environment) / "evil.txt").read_text() == "Nothing to see here."
    assert not (isolated_environment / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not (isolated_environment.parent.parent / "evil.txt").exists()


def test_an_oversized_upload_is_refused(isolated_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_MAX_FILE_MB", "0.001")  # about 1 KB
    app = upload(page(), ("big.txt", b"word " * 1000, "text/plain"), ("small.txt", b"a few words", "text/plain"))
    rows = report(app)
    assert (rows["big.txt"]["status"], rows["big.txt"]["reason"]) == ("failed", "too_large")
    assert "ASSISTANT_MAX_FILE_MB" in rows["big.txt"]["detail"]
    assert rows["small.txt"]["status"] == "added"
    assert [p.name for p in uploads_dir(isolated_environment).iterdir()] == ["small.txt"]


def test_a_store_error_is_shown_and_the_upload_taken_back(isolated_environment: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "old.md").write_text("# Old\n\nEmbedded by another model.")
    monkeypatch.setenv("ASSISTANT_EMBEDDER", str(tmp_path / "other-embedder"))
    Ingestor(load_settings(), embedder=HashingEmbedder()).run([tmp_path / "old.md"])
    monkeypatch.delenv("ASSISTANT_EMBEDDER")
    app = upload(page(), ("new.md", b"# New\n\ntext", "text/markdown"))
    assert app.status[0].state == "error"
    assert "other-embedder" in app.error[0].value and "reindex" in app.error[0].value
    assert not (uploads_dir(isolated_environment) / "new.md").exists()


def test_documents_are_listed_and_removed_after_confirmation(isolated_environment: Path, tmp_path: Path) -> None:
    seed(tmp_path)
    app = upload(page(), ("notes.txt", b"Meeting notes about the VPN rollout.", "text/plain"))
    documents = app.dataframe[1].value.to_dict("records")
    assert {row["document"]: row["chunks"] for row in documents} == {"notes.txt": 1, "reset.md": 1, "vpn.md": 1}
    assert [m.value for m in app.metric][:2] == ["3", "3"]
    assert "largest_documents" in app.json[0].value

    app.selectbox(key="kb_doc").select("notes.txt").run()
    button(app, "Remove document…").click().run()
    assert "cannot be undone" in app.warning[-1].value
    assert any("notes.txt (1 chunks)" in t.value for t in app.text)
    button(app, "Cancel").click().run()
    assert "notes.txt" in app.dataframe[-1].value["document"].tolist()  # nothing removed

    button(app, "Remove document…").click().run()
    button(app, "Yes, remove it").click().run()
    assert not app.exception
    assert "Removed a document (1 chunks)" in app.success[0].value
    assert app.dataframe[-1].value["document"].tolist() == ["reset.md", "vpn.md"]
    assert not (uploads_dir(isolated_environment) / "notes.txt").exists()  # the uploaded copy went too


def test_reindex_re_embeds_every_chunk(tmp_path: Path) -> None:
    seed(tmp_path)
    app = page()
    button(app, "Re-index").click().run()
    assert not app.exception
    assert app.success[0].value == "Re-indexed knowledge: 2 chunks."


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_retrieval_panel_shows_ranked_chunks_with_scores(tmp_path: Path, mode: str) -> None:
    seed(tmp_path)
    app = page()
    app.text_input(key="kb_query").input("how long to hold the reset button")
    app.radio[0].set_value(mode)
    app.number_input[0].set_value(2)
    button(app, "Search").click().run()
    assert not app.exception
    assert f"mode {mode}" in app.caption[0].value
    headers = [t.value for t in app.text if t.value.startswith("[")]
    assert headers[0].startswith("[1] score ") and headers[0].endswith("· reset.md — Reset")  # source — location
    assert 1 <= len(headers) <= 2
    scores = [float(header.split()[2]) for header in headers]
    assert scores == sorted(scores, reverse=True)
    assert "Hold the reset button for ten seconds." in app.code[0].value


def test_retrieval_threshold_drops_unrelated_chunks(tmp_path: Path) -> None:
    seed(tmp_path)
    app = page()
    app.text_input(key="kb_query").input("zebra giraffe")
    app.radio[0].set_value("dense")
    app.number_input[1].set_value(0.9)
    button(app, "Search").click().run()
    assert "No passages" in app.info[0].value and not app.code


def test_a_new_knowledge_base_gets_its_own_upload_folder(isolated_environment: Path) -> None:
    app = page()
    assert "No knowledge base named knowledge yet" in app.info[0].value
    app.text_input(key="kb_new").input("team-notes").run()
    upload(app, ("a.md", b"# A\n\nalpha", "text/markdown"))
    assert (uploads_dir(isolated_environment, "team-notes") / "a.md").exists()
    assert "team-notes" in app.run().selectbox(key="kb_pick").options  # listed from the next run on
    assert app.dataframe[1].value["document"].tolist() == ["a.md"]


def test_a_bad_knowledge_base_name_is_an_error_not_a_traceback() -> None:
    app = page()
    app.text_input(key="kb_new").input("../etc").run()
    assert not app.exception
    assert "not a valid knowledge base name" in app.error[0].value


def test_every_icon_is_a_material_icon() -> None:
    """Emoji icons need an emoji font, which a headless or minimal machine lacks (the README's screenshots showed
    empty boxes); Streamlit ships its Material icons with the page."""
    import re

    ui = Path(PAGE).parents[1]
    icons = [m for f in ui.rglob("*.py") for m in re.findall(r'\b(?:page_)?icon="([^"]*)"', f.read_text())]
    assert len(icons) >= 8 and all(icon.startswith(":material/") for icon in icons), icons


def test_no_unsafe_html_in_the_ui() -> None:
    for source in (Path(PAGE).parents[1]).rglob("*.py"):
        assert "unsafe_allow_html" not in source.read_text(), source


# --- the upload handling --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../x.txt", "/tmp/absolute.txt", "..\\..\\win.txt", "nul\x00byte.txt",
                                  "x" * 300 + ".txt", "..", ".hidden.txt", "sub/dir/../../.. .txt",
                                  "\u202eevil.txt", "C:\\Windows\\system.md"])
def test_hostile_names_stay_inside_the_upload_dir(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "home" / "uploads" / "kb1"
    [saved] = save_uploads([Upload(name, b"harmless text")], folder, max_bytes=1000)
    if saved.refused:  # a name left without a supported extension: refused, nothing written
        assert saved.reason == "unsupported"
        assert not folder.exists() or not any(folder.iterdir())
        return
    assert saved.path.parent == folder and saved.path.resolve().parent == folder.resolve()
    assert not saved.name.startswith(".") and "\x00" not in saved.name and "/" not in saved.name
    assert len(saved.name.encode()) <= 200 and saved.path.read_bytes() == b"harmless text"
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [saved.path]


def test_safe_name_examples() -> None:
    assert safe_name("../../evil.txt") == "evil.txt"
    assert safe_name("a\x00b\x1f.md") == "ab.md"
    assert safe_name("...") == "upload"
    assert safe_name("  Report 2024 .pdf ") == "Report 2024.pdf"
    assert safe_name("漢" * 300 + ".md").endswith(".md") and len(safe_name("漢" * 300 + ".md").encode()) <= 200
    assert [safe_name(n) for n in ("CON", "nul.txt", "com1.tar.gz", "LPT9.md", "console.md")] == [
        "_CON", "_nul.txt", "_com1.tar.gz", "_LPT9.md", "console.md"]  # Windows devices, not files


def test_size_is_checked_before_anything_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "up"
    declared, lying = save_uploads([Upload("a.txt", b"x" * 10, size=5000), Upload("b.txt", b"y" * 5000, size=10)],
                                   folder, max_bytes=1000)
    assert declared.reason == lying.reason == "too_large"
    assert not any(folder.iterdir())


def test_content_must_match_the_extension(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    saved = save_uploads([Upload("photo.txt", png), Upload("text.pdf", b"plain"), Upload("empty.md", b""),
                          Upload("tool.exe", b"MZ")], tmp_path / "up", max_bytes=1000)
    assert [s.reason for s in saved] == ["unsupported", "corrupt", "empty", "unsupported"]
    assert not any((tmp_path / "up").iterdir())


def test_names_never_collide(tmp_path: Path) -> None:
    folder = tmp_path / "up"
    first = save_uploads([Upload("a.txt", b"one"), Upload("../a.txt", b"two")], folder, max_bytes=100)
    assert [s.name for s in first] == ["a.txt", "a (2).txt"]
    kept = save_uploads([Upload("a.txt", b"three")], folder, max_bytes=100, replace=False)
    assert kept[0].name == "a (3).txt"
    assert [(folder / n).read_text() for n in ("a.txt", "a (2).txt", "a (3).txt")] == ["one", "two", "three"]


def test_a_failed_replacement_puts_the_old_file_back() -> None:
    settings = load_settings()
    first = ingest_uploads(settings, "kb1", [Upload("doc.txt", b"the first version")], embedder=HashingEmbedder())
    assert first.report.count("added") == 1
    path = first.saved[0].path
    # decodes as neither UTF-8 nor cp1252 (0x81 is undefined there): fails at ingest, not at the upload check
    second = ingest_uploads(settings, "kb1", [Upload("doc.txt", b"\x81\x8d\x8f\x90\x9d" * 4)],
                            embedder=HashingEmbedder())
    assert second.rows()[0]["status"] == "failed" and second.rows()[0]["reason"] == "decode_error"
    assert path.read_bytes() == b"the first version"
    assert sorted(p.name for p in path.parent.iterdir()) == ["doc.txt"]  # no temporary or backup files left


def test_retrieval_evaluation_scores_every_mode_without_generating(tmp_path: Path) -> None:
    seed(tmp_path)
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text(
        '{"question": "how long do I hold the reset button", "answer": "10 s", "sources": ["reset.md"]}\n'
        '{"question": "which port does the VPN use", "answer": "51820", "sources": ["vpn.md"]}\n')
    app = page()
    app.text_input(key="kb_eval").input(str(eval_file))
    button(app, "Evaluate retrieval").click().run()
    assert not app.exception
    (table,) = [frame.value.to_dict("records") for frame in app.dataframe if "configuration" in frame.value.columns]
    assert [row["configuration"] for row in table] == ["dense", "bm25", "hybrid"]
    assert all(float(row["hit@10"]) == 100.0 for row in table)  # two documents: each is found within 10
    assert any("2 questions (0 without sources)" in c.value for c in app.caption)
    assert (load_settings().home / "comparisons" / "eval" / "retrieval.json").is_file()
