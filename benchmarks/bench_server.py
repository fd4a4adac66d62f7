"""`assistant serve` under load: /v1/chat/completions (plain, 32 new tokens, greedy) for 1, 4 and 16 concurrent
clients, beside the same answers computed in-process through the library, in one run. Prints a Markdown table for
docs/BENCHMARKS.md.

    .venv/bin/python benchmarks/bench_server.py [--requests 20] [--tokens 32]

What it shows: the server's overhead per request (goal ≤ 5 % of the in-process latency at 1 client), that nothing is
lost at 16 clients (the queue holds them; generation is one at a time), and how p95 latency grows with queue depth
(goal: no worse than linearly — a request waits for the ones ahead of it, nothing more).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402

from assistant.config import Settings  # noqa: E402
from tests.api_server import ApiServer  # noqa: E402

PROMPTS = [
    "Explain what a router does in a home network.", "Describe how DNS resolves a domain name.",
    "Write a short paragraph about the history of the internet.", "What are the benefits of mesh Wi-Fi?",
    "Explain the difference between TCP and UDP.", "Describe a good routine for backing up files.",
    "What is a firewall and why does it matter?", "Explain what latency means for online games.",
    "Give advice for choosing a strong password.", "Describe how a VPN protects privacy.",
]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def paired(home: Path, server: ApiServer, prompts: list[str], tokens: int) -> tuple[list[float], list[float]]:
    """(in-process latencies, server latencies) for the same prompts, alternating one and the other, so the
    machine's drift (±15 % from minute to minute on shared cores) hits both alike."""
    from assistant.strategies import build_strategy, generator_for

    settings = Settings(home=home, max_tokens=tokens)
    strategy = build_strategy("plain", settings, generator_for("plain", settings))
    client = server.client()
    local, remote = [], []
    for prompt in prompts:
        started = time.perf_counter()
        strategy.answer(prompt, max_tokens=tokens)
        local.append(time.perf_counter() - started)
        started = time.perf_counter()
        client.chat.completions.create(model="plain", max_tokens=tokens, messages=[{"role": "user", "content": prompt}])
        remote.append(time.perf_counter() - started)
    return local, remote


def over_http(server: ApiServer, prompts: list[str], tokens: int, clients: int) -> tuple[list[float], int, float]:
    """(latencies of the requests that succeeded, failures, wall seconds) with `clients` concurrent clients."""
    client = server.client()

    def ask(prompt: str) -> float | None:
        started = time.perf_counter()
        try:
            client.chat.completions.create(model="plain", max_tokens=tokens,
                                           messages=[{"role": "user", "content": prompt}])
        except openai.APIError:
            return None
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(ask, prompts))
    wall = time.perf_counter() - started
    ok = [r for r in results if r is not None]
    return ok, len(results) - len(ok), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20, help="requests per row (spread over the clients)")
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    home = ROOT / "benchmarks" / ".data" / "server-home"
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.requests)]

    env = {"ASSISTANT_SERVER_QUEUE": str(4 * args.requests), "ASSISTANT_MAX_TOKENS": str(args.tokens)}
    with ApiServer(home, env) as server:
        over_http(server, prompts[:1], args.tokens, 1)  # warm: the server loads the model on first use
        local, remote = paired(home, server, prompts, args.tokens)
        gc.collect()  # the in-process model (reference cycles): its idle threads must not share the cores below
        rows = [("in-process (library), alternating with ↓", 1, local, 0, sum(local)),
                ("server, 1 client, alternating with ↑", 1, remote, 0, sum(remote))]
        for clients in (4, 16):
            latencies, failed, wall = over_http(server, prompts, args.tokens, clients)
            rows.append((f"server, {clients} clients", clients, latencies, failed, wall))

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")),
                      platform.processor())
    flags = sorted({f for f in cpu.split() if f.startswith(("avx2", "avx512f", "avx512_bf16"))})
    print(f"\n{datetime.date.today()} · {model_name} · {os.cpu_count()} cores · flags {' '.join(flags)} · "
          f"{args.requests} requests a row, plain, {args.tokens} new tokens, greedy\n")
    print("| row | requests/s | p50 s | p95 s | failed | p95 / (clients × in-process p50) |")
    print("|---|---|---|---|---|---|")
    base = statistics.median(local)
    for name, clients, latencies, failed, wall in rows:
        p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
        print(f"| {name} | {len(latencies) / wall:.2f} | {p50:.3f} | {p95:.3f} | {failed} | "
              f"{p95 / (clients * base):.2f} |")
    extra = statistics.median(r - l for l, r in zip(local, remote))  # paired: the same prompt, moments apart
    print(f"\nserver overhead at 1 client (median of paired differences): {extra:+.3f} s a request = "
          f"{extra / base:+.1%} of in-process (goal ≤ 5 %); failed at 16 clients: {rows[3][3]} (goal 0)")


if __name__ == "__main__":
    main()
