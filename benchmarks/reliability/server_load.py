"""Reliability claim 8, the server half (issue 16): `assistant serve` with many clients at once loses no request and
mixes up no answer, and past its queue bound it answers 429 with Retry-After at once — never a hang.

    .venv/bin/python benchmarks/reliability/server_load.py [--clients 16] [--tokens 16]

The real server on 127.0.0.1 with the bundled model (llama.cpp, greedy); the official openai client. Each client
asks its own question; every answer given under load, streamed or not, must equal the answer to the same question
asked alone — so an answer that went to the wrong client, or two streams interleaved, shows. Then a server with a
queue of 4 gets 3× that many clients at once. Prints a Markdown table for docs/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.api_server import ApiServer, answer  # noqa: E402

GUARD_S = 900
QUEUE = 4


def overload(client: openai.OpenAI, n: int, tokens: int) -> tuple[str, float, str | None]:
    """('ok' or 'busy', seconds, Retry-After) for one request against the small queue."""
    started = time.perf_counter()
    try:
        answer(client, n, tokens)
        return "ok", time.perf_counter() - started, None
    except openai.RateLimitError as exc:
        return "busy", time.perf_counter() - started, exc.response.headers.get("retry-after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="server-load-") as scratch:
        home = Path(scratch)
        with ApiServer(home, {"ASSISTANT_SERVER_QUEUE": str(args.clients)}) as server:
            client = server.client()
            alone = {n: answer(client, n, args.tokens) for n in range(args.clients)}
            with ThreadPoolExecutor(args.clients) as pool:
                plain = dict(zip(range(args.clients), pool.map(lambda n: answer(client, n, args.tokens),
                                                               range(args.clients))))
                streamed = dict(zip(range(args.clients), pool.map(lambda n: answer(client, n, args.tokens, True),
                                                                  range(args.clients))))
        with ApiServer(home, {"ASSISTANT_SERVER_QUEUE": str(QUEUE)}) as server:
            client = server.client()
            answer(client, 0, 2)  # the model loaded, so the burst meets a warm server
            burst = 3 * QUEUE
            with ThreadPoolExecutor(burst) as pool:
                outcomes = list(pool.map(lambda n: overload(client, n, args.tokens), range(burst)))
            after = answer(client, 1, args.tokens)
    seconds = time.perf_counter() - started
    mixed_plain = sum(plain[n] != alone[n] for n in alone)
    mixed_streamed = sum(streamed[n] != alone[n] for n in alone)
    served = [s for kind, s, _ in outcomes if kind == "ok"]
    busy = [(s, retry) for kind, s, retry in outcomes if kind == "busy"]

    print(f"\n{datetime.date.today()}, server_load.py --clients {args.clients} --tokens {args.tokens}, "
          f"{seconds:.0f} s\n")
    print("| check | result |")
    print("|---|---|")
    print(f"| distinct answers among the {args.clients} asked alone (so a swap would show) | "
          f"{len(set(alone.values()))} |")
    print(f"| {args.clients} clients at once, plain: answered / equal to the answer asked alone | "
          f"{len(plain)} / {args.clients - mixed_plain} of {args.clients} |")
    print(f"| {args.clients} clients at once, streamed: answered / equal to the answer asked alone | "
          f"{len(streamed)} / {args.clients - mixed_streamed} of {args.clients} |")
    print(f"| queue of {QUEUE}, {burst} clients at once: served / 429 | {len(served)} / {len(busy)} |")
    print(f"| every 429 with Retry-After, and how fast | {sum(r is not None for _, r in busy)} of {len(busy)}, "
          f"slowest {max((s for s, _ in busy), default=0):.2f} s |")
    print(f"| slowest served request in the burst | {max(served, default=0):.1f} s |")
    print(f"| a request after the burst | {'answered' if after == alone[1] else 'answered differently'} |")
    if (len(set(alone.values())) < args.clients or mixed_plain or mixed_streamed or not busy
            or any(r is None for _, r in busy) or after != alone[1]):
        sys.exit(1)


if __name__ == "__main__":
    main()
