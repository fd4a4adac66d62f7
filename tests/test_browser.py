"""The app in a real headless Chromium: `assistant ui` serving the real bundled models, a RAG question typed into the
chat, the streamed answer, its sources opened, and a screenshot of every page.

Screenshots go to tests/artifacts/ (gitignored); with RAGTUNE_SCREENSHOTS=/absolute/dir they are also copied there (that is
how docs/screenshots/ in the README is made). Needs Debian's `chromium` (`apt-get install chromium`; .ci/run installs
it) and the `playwright` package (a dev extra); without them the test is skipped and says so.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.api_server import numbered_question
from tests.app_server import AppServer, ask, open_chat
from tests.limits import HANG_GUARD_S
from tests.test_cli import run
from tests.test_cli_kb import SAMPLE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
PAGES = {"chat": "", "knowledge": "knowledge", "finetune": "finetune", "compare": "compare"}

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(model_home: Path):
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium: `apt-get install chromium` enables the browser test (.ci/run does it in CI)")
    pytest.importorskip("playwright", reason="`pip install -e .[dev]` installs playwright for the browser test")
    env = {**os.environ, "ASSISTANT_HOME": str(model_home), "ASSISTANT_COLLECTION": "sample",
           "ASSISTANT_MAX_TOKENS": "48", "ASSISTANT_EXAMPLES": str(SAMPLE.parent / "examples.jsonl")}
    assert run("ingest", str(SAMPLE), env=env).returncode == 0
    # a finished comparison for the Compare page to show (its screenshot is the README's): two strategies, 3 questions
    compared = run("compare", str(SAMPLE.parent / "eval.jsonl"), "--strategies", "plain,rag", "--limit", "3", env=env)
    assert compared.returncode == 0, compared.stderr
    with AppServer(env) as app:
        yield app.url


def test_rag_question_in_a_real_browser_streams_an_answer_with_sources(served: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(served)
        chat_input = page.get_by_test_id("stChatInputTextArea")
        expect(chat_input).to_be_visible(timeout=HANG_GUARD_S * 1000)  # the first load builds the model and its kernels
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_role("combobox").first.click()
        page.get_by_role("option", name="rag", exact=True).click()
        chat_input.fill("How long is the warranty on the Nimbus R7?")
        chat_input.press("Enter")
        sources = page.get_by_test_id("stExpander").filter(has_text="Sources")
        expect(sources.first).to_be_visible(timeout=HANG_GUARD_S * 1000)
        sources.first.click()
        expect(page.get_by_text("warranty-policy.pdf").first).to_be_visible()
        messages = page.get_by_test_id("stChatMessage")
        expect(messages).to_have_count(2)
        assert messages.nth(1).inner_text().strip()
        shots = [_shot(page, "chat")]
        for name, path in PAGES.items():
            if not path:
                continue
            page.goto(f"{served}/{path}")
            page.get_by_test_id("stMainBlockContainer").wait_for(timeout=HANG_GUARD_S * 1000)
            page.wait_for_timeout(3000)  # let the page finish its first run
            if name == "compare":  # the finished comparison, table and chart both in the (taller) window
                page.set_viewport_size({"width": 1400, "height": 1500})
                expect(page.get_by_test_id("stDataFrame").first).to_be_visible(timeout=HANG_GUARD_S * 1000)
                expect(page.get_by_test_id("stImage").first).to_be_visible(timeout=HANG_GUARD_S * 1000)
                page.get_by_test_id("stImage").first.scroll_into_view_if_needed()
            shots.append(_shot(page, name))
        browser.close()
    assert all(shot.stat().st_size > 10_000 for shot in shots)
    if target := os.environ.get("RAGTUNE_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(target) / shot.name)


def _shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_two_sessions_asking_at_once_each_get_their_own_answer(served: str) -> None:
    """The sessions share one cached generator: neither answer may go to the other, or interleave with it."""
    from playwright.async_api import async_playwright

    questions = [numbered_question(n)[0]["content"] for n in (3, 4)]

    async def alone_then_together():
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            alone = [await ask(await open_chat(browser, served, HANG_GUARD_S), q, HANG_GUARD_S) for q in questions]
            pages = [await open_chat(browser, served, HANG_GUARD_S) for _ in questions]
            together = await asyncio.gather(*(ask(page, q, HANG_GUARD_S) for page, q in zip(pages, questions)))
            await browser.close()
        return alone, together

    alone, together = asyncio.run(alone_then_together())
    assert alone[0].text and alone[0].text != alone[1].text  # a swap would show
    assert [(r.question_shown, r.text, r.error) for r in together] == [(q, a.text, None)
                                                                       for q, a in zip(questions, alone)]
