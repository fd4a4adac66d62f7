"""A real `chroma run` on a free loopback port, for the tests and the benchmarks that need a Chroma server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.api_server import free_port

START_GUARD_S = 60


def start_chroma(data: Path) -> tuple[subprocess.Popen, str]:
    """The server process and its URL, once it listens; RuntimeError if it does not within a minute."""
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent))
    port = free_port()
    server = subprocess.Popen([chroma, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + START_GUARD_S
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"http://127.0.0.1:{port}"
        time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"chroma run did not start listening within {START_GUARD_S} s")
