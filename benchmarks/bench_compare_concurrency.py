"""`compare --concurrency N` against a server (issue 15): questions per second at N = 1, 4, 16 against a loopback
OpenAI-compatible server that takes a fixed time per request (a stand-in for a batching server's latency), through
the product's comparison runner and the official openai client. Prints a Markdown table for docs/BENCHMARKS.md.

    .venv/bin/python benchmarks/bench_compare_concurrency.py [--latency 0.2] [--questions 64]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from assistant.config import Settings  # noqa: E402
from assistant.evaluation.compare import Runner  # noqa: E402
from assistant.evaluation.evalset import read_eval  # noqa: E402
from assistant.models.openai_compat import OpenAIGenerator  # noqa: E402
from assistant.strategies import build_strategy  # noqa: E402
from tests.openai_server import KEY, OpenAICompatibleServer, _Handler  # noqa: E402


class _SlowHandler(_Handler):
    def do_POST(self) -> None:
        time.sleep(self.server.latency)
        super().do_POST()


class SlowServer(OpenAICompatibleServer):
    handler = _SlowHandler

    def __init__(self, latency: float) -> None:
        super().__init__()
        self.latency = latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per request")
    parser.add_argument("--questions", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as scratch, SlowServer(args.latency) as server:
        home = Path(scratch)
        eval_file = home / "eval.jsonl"
        eval_file.write_text("".join(json.dumps({"question": f"Question number {i}?", "answer": f"Answer {i}."})
                                     + "\n" for i in range(args.questions)))
        items, _ = read_eval(eval_file)
        settings = Settings(home=home, backend="openai", model="echo-model")

        def factory(name: str):
            return build_strategy(name, settings, OpenAIGenerator("echo-model", base_url=server.base_url,
                                                                  api_key=KEY, max_retries=0))

        rows = []
        for concurrency in (1, 4, 16):
            runner = Runner(settings, ["plain"], home / f"out-{concurrency}", factory=factory, progress=False,
                            concurrency=concurrency)
            started = time.perf_counter()
            result = runner.run(items, fresh=True)
            seconds = time.perf_counter() - started
            assert result.computed == len(items)
            rows.append((concurrency, len(items) / seconds))
    print(f"### Comparison concurrency, {datetime.date.today().isoformat()}\n\n{os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; {len(items)} questions, strategy plain, a loopback server taking "
          f"{args.latency * 1000:.0f} ms per request (ThreadingHTTPServer), the official openai client.\n")
    print("| --concurrency | questions/s | speed-up | of ideal (N×) |\n|---:|---:|---:|---:|")
    for concurrency, rate in rows:
        speedup = rate / rows[0][1]
        print(f"| {concurrency} | {rate:.2f} | {speedup:.2f}× | {100 * speedup / concurrency:.0f} % |")


if __name__ == "__main__":
    main()
