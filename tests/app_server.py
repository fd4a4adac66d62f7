"""`assistant ui` started for real, as `make run` starts it, on a free loopback port, and what a real browser does
with it (playwright's async API, so several sessions can ask at once)."""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.request
from dataclasses import dataclass

from tests.api_server import ASSISTANT, free_port
from tests.limits import QUICK_GUARD_S


class AppServer:
    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.port = env, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AppServer:
        self.process = subprocess.Popen([ASSISTANT, "ui", "--port", str(self.port)], env=self.env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + QUICK_GUARD_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"assistant ui exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"assistant ui did not answer within {QUICK_GUARD_S} s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(QUICK_GUARD_S)


@dataclass
class Reply:
    question_shown: str  # the user message the page put above the answer
    text: str
    seconds: float
    sources: int  # "Sources" expanders under the answer (rag)
    error: str | None  # an error the page showed instead


async def open_chat(browser, url: str, guard_s: float):
    """A new browser context (its own cookies, so its own Streamlit session) on the chat page, ready to type."""
    from playwright.async_api import expect

    page = await (await browser.new_context(viewport={"width": 1400, "height": 1000})).new_page()
    await page.goto(url)
    await expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible(timeout=guard_s * 1000)
    return page


async def pick_strategy(page, name: str) -> None:
    await page.get_by_test_id("stSidebar").get_by_role("combobox").first.click()
    await page.get_by_role("option", name=name, exact=True).click()


async def ask(page, question: str, guard_s: float) -> Reply:
    """Type a question into the chat and wait for its finished answer (the page redraws it with its feedback
    controls) or for an error on the page."""
    messages = page.get_by_test_id("stChatMessage")
    before = await messages.count()
    started = time.perf_counter()
    box = page.get_by_test_id("stChatInputTextArea")
    await box.fill(question)
    await box.press("Enter")
    while time.perf_counter() - started < guard_s:
        alerts = page.get_by_test_id("stAlertContainer")
        if await alerts.count():
            return Reply("", "", time.perf_counter() - started, 0, await alerts.first.inner_text())
        if await messages.count() >= before + 2:
            answer = messages.nth(before + 1)
            if await answer.get_by_text("Edit the answer").count():
                return Reply(await messages.nth(before).get_by_test_id("stMarkdownContainer").first.inner_text(),
                             await answer.get_by_test_id("stMarkdownContainer").first.inner_text(),
                             time.perf_counter() - started,
                             await answer.get_by_test_id("stExpander").filter(has_text="Sources").count(), None)
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no answer to {question!r} within {guard_s} s")
