"""`assistant doctor` and `assistant ui`: check the installation, start the web app."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from assistant.config import load_settings
from assistant.errors import AssistantError


def doctor() -> None:
    """Check the data home, the bundled models and the configured backend; say how to fix what is wrong."""
    from assistant.doctor import run_checks

    settings = load_settings()
    failed = 0
    for check in run_checks(settings):
        mark = "ok  " if check.ok else "FAIL"
        print(f"[{mark}] {check.name}: {check.detail}", flush=True)
        failed += not check.ok
    if failed:
        print(f"{failed} check(s) failed.", file=sys.stderr)
        raise typer.Exit(1)


def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 to serve your network).")] = "127.0.0.1",
) -> None:
    """Start the web app. Extra --server.* / --theme.* options are passed to Streamlit."""
    settings = load_settings()  # a bad setting fails here, in one line, rather than inside the browser
    app_file = Path(__file__).resolve().parents[2] / "ui" / "app.py"  # `ui` is installed beside `assistant`
    if not app_file.is_file():
        raise AssistantError(f"The web app is missing ({app_file}); reinstall with `make install`.")
    command = [
        sys.executable, "-m", "streamlit", "run", str(app_file),
        "--server.port", str(port), "--server.address", host,
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        # Streamlit's own HTTP limit, so the server refuses what the upload page would refuse anyway
        "--server.maxUploadSize", str(max(1, round(settings.max_file_mb))),
        "--client.toolbarMode", "minimal",  # no "Deploy" button: this app is not on Streamlit Cloud
        *ctx.args,
    ]
    print(f"Serving on http://{host}:{port}", flush=True)
    # Replaced by Streamlit rather than waiting on it: a stop signal (SIGTERM from a service manager, a test, `kill`)
    # then reaches the server itself instead of leaving it orphaned and holding the port.
    os.execv(sys.executable, command)
