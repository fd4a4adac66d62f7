"""Reliability claims 5 and 8, the web app's half (issue 16): many browser sessions asking the app at once each get
their own answer — the one they get asking alone — with none lost, mixed up or interleaved (they share one cached
generator); and the app answering rag questions while two CLI ingests and a `compare` write and read the same
embedded store loses and duplicates nothing and never hangs.

    .venv/bin/python benchmarks/reliability/app_load.py [--sessions 8] [--tokens 16] [--files 30]

The real `assistant ui` on 127.0.0.1 with the bundled models (llama.cpp, greedy; MiniLM embeddings), headless
Chromium through playwright, each session its own browser context. The store is checked afterwards against the same
folders ingested one after another into a fresh data home. Prints a Markdown table for docs/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.reliability.claims import report  # noqa: E402
from benchmarks.reliability.concurrency import folders, stored  # noqa: E402
from tests.api_server import ASSISTANT, numbered_question  # noqa: E402
from tests.app_server import AppServer, ask, open_chat, pick_strategy  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SAMPLE = ROOT / "knowledge"
GUARD_S = 900  # one answer, on a machine this script loads with everything at once
WAIT_S = 10  # ingest/store.py WRITER_WAIT_SECONDS: how long a second writer waits before it is told to retry


def question(n: int) -> str:
    return numbered_question(n)[0]["content"]


async def sessions_at_once(url: str, sessions: int) -> tuple[dict, list]:
    """Each numbered question asked alone (a fresh session each), then all of them at once, one session each."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        alone = {}
        for n in range(sessions):
            page = await open_chat(browser, url, GUARD_S)
            alone[n] = await ask(page, question(n), GUARD_S)
            await page.context.close()
        pages = [await open_chat(browser, url, GUARD_S) for _ in range(sessions)]
        together = await asyncio.gather(*(ask(page, question(n), GUARD_S) for n, page in enumerate(pages)))
        await browser.close()
    return alone, list(together)


def run_writers(parts: list[Path], env: dict[str, str], out: Path) -> list[subprocess.Popen]:
    ingests = [subprocess.Popen([ASSISTANT, "ingest", str(part)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for part in parts]
    compare = subprocess.Popen([ASSISTANT, "compare", str(SAMPLE / "eval.jsonl"), "--strategies", "plain,rag",
                                "--limit", "6", "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    return [*ingests, compare]


async def rag_while_writing(url: str, sessions: int, questions: list[str], busy) -> list[list]:
    """`sessions` rag chats, each asking the eval questions in turn while busy() (and at least two each)."""
    from playwright.async_api import async_playwright

    async def chat(page, offset: int) -> list:
        await pick_strategy(page, "rag")
        replies = []
        while busy() or len(replies) < 2:
            replies.append(await ask(page, questions[(offset + len(replies)) % len(questions)], GUARD_S))
        return replies

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        pages = [await open_chat(browser, url, GUARD_S) for _ in range(sessions)]
        replies = await asyncio.gather(*(chat(page, 3 * s) for s, page in enumerate(pages)))
        await browser.close()
    return list(replies)


def ingest(env: dict[str, str], folder: Path) -> None:
    subprocess.run([ASSISTANT, "ingest", str(folder)], env=env, capture_output=True, timeout=GUARD_S, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--files", type=int, default=30, help="Files in each of the two folders ingested at once.")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print("app_load.py not run: it drives the app in a real browser; `apt-get install chromium` first")
        return
    rows: list[tuple[str, str, bool]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="app-load-") as scratch:
        work = Path(scratch)
        base = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
        env = {**base, "ASSISTANT_HOME": str(work / "home"), "ASSISTANT_COLLECTION": "sample",
               "ASSISTANT_MAX_TOKENS": str(args.tokens), "ASSISTANT_EXAMPLES": str(SAMPLE / "examples.jsonl")}
        ingest(env, SAMPLE / "docs")
        parts = folders(work / "docs", 2, args.files, random.Random(16))
        with AppServer(env) as app:
            # Claim 8: sessions at once.
            alone, together = asyncio.run(sessions_at_once(app.url, args.sessions))
            distinct = len({reply.text for reply in alone.values()})
            delivered = [r for r in together if r.error is None and r.text]
            own = [n for n, r in enumerate(together) if r.question_shown == question(n) and r.text == alone[n].text]
            rows.append((f"{args.sessions} questions asked alone, one fresh session each: distinct answers (so a "
                         "swap would show)", f"{distinct} of {args.sessions}", distinct == args.sessions))
            rows.append((f"{args.sessions} browser sessions asking at once: answers delivered / each its own "
                         "question's, equal to its answer alone",
                         f"{len(delivered)} / {len(own)} of {args.sessions}; slowest "
                         f"{max(r.seconds for r in together):.1f} s", len(own) == args.sessions))

            # Claim 5: the app reading while two ingests and a compare use the same embedded store.
            writers = run_writers(parts, env, work / "comparison")
            eval_questions = [json.loads(line)["question"] for line in (SAMPLE / "eval.jsonl").open()]
            chats = asyncio.run(rag_while_writing(app.url, 3, eval_questions,
                                                  lambda: any(w.poll() is None for w in writers)))
            outcomes = [(w.wait(GUARD_S), w.stderr.read().strip().splitlines()) for w in writers]
        replies = [reply for chat in chats for reply in chat]
        answered = [r for r in replies if r.error is None and r.text and r.sources]
        refused = [n for n, (code, lines) in enumerate(outcomes[:2])
                   if code and lines and "Another process is writing" in lines[-1]]
        for n in refused:
            ingest(env, parts[n])  # told to retry: retried, as the message says
        rows.append(("3 rag chats in the app while 2 ingests and a compare ran: answers with sources / asked",
                     f"{len(answered)} / {len(replies)}; slowest {max(r.seconds for r in replies):.1f} s; errors "
                     f"shown: {sorted({r.error for r in replies if r.error}) or 'none'}",
                     len(answered) == len(replies)))
        rows.append(("the 2 ingests beside them", ", ".join(
            f"exit {code}" + (" (another process was writing: retried)" if n in refused else "")
            for n, (code, _) in enumerate(outcomes[:2])), all(code == 0 or n in refused
                                                              for n, (code, _) in enumerate(outcomes[:2]))))
        rows.append(("the compare beside them (plain,rag, 6 questions)", f"exit {outcomes[2][0]}"
                     + (f": {outcomes[2][1][-1]}" if outcomes[2][0] else ""), outcomes[2][0] == 0))
        reference = {**env, "ASSISTANT_HOME": str(work / "reference")}
        for folder in (SAMPLE / "docs", *parts):
            ingest(reference, folder)
        want, have = stored(reference), stored(env)
        count = lambda state: sum(map(len, (state.get("documents") or {}).values()))  # noqa: E731
        rows.append(("afterwards, chunks = the three folders' ingested one at a time (none lost, none twice)",
                     f"{count(want)} expected, {count(have)} stored",
                     have.get("documents") == want.get("documents") and not have.get("not_done")))
    seconds = time.perf_counter() - started

    report(f"app_load.py --sessions {args.sessions} --tokens {args.tokens} --files {args.files}", seconds, rows)


if __name__ == "__main__":
    main()
