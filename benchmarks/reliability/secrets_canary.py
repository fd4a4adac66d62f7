"""Reliability claim 7 (issue 16): an API key never shows up where it should not — with debug logging on for every
command and the upstream server failing in each way (401, 500, no answer before the timeout), each failure
repeating the key it was sent, the canary keys appear in no output, log, job log, registry, result file or page.

    .venv/bin/python benchmarks/reliability/secrets_canary.py

Two canaries: the OpenAI key (OPENAI_API_KEY, sent upstream) and a key of `assistant serve` (ASSISTANT_API_KEYS,
sent by its clients). Every command runs with ASSISTANT_LOG_LEVEL=debug and OPENAI_LOG=debug against
tests/failing_server.py; afterwards every file under the data home is searched too. Prints a Markdown table for
docs/RELIABILITY.md.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.api_server import ApiServer  # noqa: E402
from tests.failing_server import FailingServer  # noqa: E402

ASSISTANT = str(Path(sys.executable).with_name("assistant"))
GUARD_S = 600
MODES = ("401", "500", "hang")
OPENAI_KEY = f"sk-canary-{secrets.token_hex(12)}"
SERVER_KEY = f"srv-canary-{secrets.token_hex(12)}"
CANARIES = (OPENAI_KEY, SERVER_KEY)


def leaks(text: str | bytes) -> int:
    data = text.encode() if isinstance(text, str) else text
    return sum(data.count(canary.encode()) for canary in CANARIES)


def main() -> None:
    rows: list[tuple[str, str, str, int]] = []  # command, mode, outcome, canary occurrences
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="secrets-canary-") as scratch, FailingServer(hang_s=8) as upstream:
        work = Path(scratch)
        home = work / "home"
        docs = work / "docs"
        docs.mkdir()
        (docs / "routers.md").write_text("# Routers\nA router forwards packets between networks.\n")
        data = work / "examples.jsonl"
        data.write_text("".join(json.dumps({"prompt": f"Question {i}?", "completion": f"Answer {i}."}) + "\n"
                                for i in range(12)))
        base = {**{k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_"))},
                "ASSISTANT_HOME": str(home), "ASSISTANT_LOG_LEVEL": "debug", "OPENAI_LOG": "debug",
                "OPENAI_API_KEY": OPENAI_KEY, "ASSISTANT_API_KEYS": SERVER_KEY, "ASSISTANT_BACKEND": "openai",
                "ASSISTANT_MODEL": "gpt-4o-mini", "ASSISTANT_OPENAI_TIMEOUT": "2",
                "ASSISTANT_OPENAI_MAX_RETRIES": "1"}
        subprocess.run([ASSISTANT, "ingest", str(docs)], env=base, capture_output=True, check=True, timeout=GUARD_S)
        for mode in MODES:
            env = {**base, "OPENAI_BASE_URL": upstream.base_url(mode)}
            commands = {
                "ask (plain)": ["ask", "hi", "--strategy", "plain"],
                "ask (rag)": ["ask", "What does a router do?", "--strategy", "rag"],
                "compare": ["compare", str(data), "--strategies", "plain", "--limit", "2", "--out",
                            str(work / f"compare-{mode}")],
                "finetune train --provider openai": ["finetune", "train", str(data), "--name", f"leak-{mode}",
                                                     "--provider", "openai", "--model", "gpt-4o-mini-2024-07-18"],
                "finetune status": ["finetune", "status", f"leak-{mode}"],
                "finetune list": ["finetune", "list"],
                "doctor": ["doctor"],
            }
            for label, args in commands.items():
                done = subprocess.run([ASSISTANT, *args], env=env, capture_output=True, timeout=GUARD_S)
                rows.append((label, mode, f"exit {done.returncode}", leaks(done.stdout) + leaks(done.stderr)))
                print(f"{mode} {label}: exit {done.returncode}: {done.stderr.decode()[-200:]}", file=sys.stderr)
            rows.append(("serve (a client's chat, proxied upstream)", mode, *serve_round(home, env)))
            rows.append(("web app (chat page)", mode, *app_round(env)))
        stored = sum(leaks(path.read_bytes()) for path in home.rglob("*") if path.is_file())
        result_files = sum(leaks(path.read_bytes()) for path in work.glob("compare-*/**/*") if path.is_file())
    seconds = time.perf_counter() - started

    print(f"\n{datetime.date.today()}, secrets_canary.py, {seconds:.0f} s\n")
    print("| command | " + " | ".join(f"upstream {mode}" for mode in MODES) + " |")
    print("|---|" + "---|" * len(MODES))
    for label in dict.fromkeys(label for label, *_ in rows):
        cells = [next(f"{outcome}, {found} canaries" for lbl, m, outcome, found in rows if lbl == label and m == mode)
                 for mode in MODES]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\nEvery file under the data home afterwards (registry, job logs, server logs, caches, manifests): "
          f"{stored} canaries; the compare result files: {result_files}.")
    if stored or result_files or any(found for *_, found in rows):
        sys.exit(1)


def serve_round(home: Path, env: dict[str, str]) -> tuple[str, int]:
    """(the HTTP status the client got, canaries in what it got back and in the server's log)."""
    import openai

    server = ApiServer(home, env=env, key=SERVER_KEY).start()
    try:
        seen = 0
        try:
            server.client().chat.completions.create(
                model="plain", messages=[{"role": "user", "content": "hi"}])
            status = 200
        except openai.APIStatusError as exc:
            status, seen = exc.status_code, leaks(exc.response.text) + leaks(str(exc.response.headers))
        try:  # a client with a wrong key: told so, its key not echoed to the log either
            server.client(key=f"{SERVER_KEY}-wrong").models.list()
        except openai.AuthenticationError as exc:
            seen += leaks(exc.response.text)
    finally:
        server.stop()
    return f"HTTP {status}", seen + leaks(server.output())


def app_round(env: dict[str, str]) -> tuple[str, int]:
    """(errors shown, canaries in the whole page the app rendered) for one question on the chat page."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        st.cache_resource.clear()
        app = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=GUARD_S)
        app.run()
        app.chat_input[0].set_value("hi").run()
        return f"{len(app.error)} error shown", leaks(str(app._tree))
    finally:
        os.environ.clear()
        os.environ.update(saved)


if __name__ == "__main__":
    main()
