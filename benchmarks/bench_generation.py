"""Local generation speed: naive fp32 `model.generate` on the dequantised bundled model vs the `local` backend as
shipped, on 20 fixed prompts, in one run. Prints a Markdown table for docs/BENCHMARKS.md.

    .venv/bin/python benchmarks/bench_generation.py [--tokens 128] [--home DIR]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer  # noqa: E402

from assistant.config import load_settings  # noqa: E402
from assistant.models.base import as_messages  # noqa: E402
from assistant.models.local import LocalGenerator  # noqa: E402
from assistant.models.local_weights import resolve_source, weights_folder  # noqa: E402

PROMPTS = [
    "What is the capital of Australia?",
    "What does a router do in a computer network?",
    "Explain the difference between TCP and UDP.",
    "How do I make a simple tomato pasta sauce?",
    "Write a Python function that checks whether a number is prime.",
    "What is 17 multiplied by 23?",
    "Define photosynthesis in one paragraph.",
    "Who wrote the novel Pride and Prejudice?",
    "What is DNS and why is it important?",
    "How long should I boil an egg for a soft yolk?",
    "Explain what a linked list is in programming.",
    "Solve for x: 3x + 7 = 22.",
    "What is the meaning of the word 'ephemeral'?",
    "Why is the sky blue?",
    "What is the difference between an IPv4 and an IPv6 address?",
    "Give me a recipe for pancakes.",
    "Write a SQL query that selects all users older than 30 from a table called users.",
    "What is the Pythagorean theorem?",
    "I am planning ten days in Japan in spring: Tokyo, Kyoto and Osaka, temples, food markets and gardens, on a "
    "moderate budget. How should I split my time between the cities and what should I prioritise in each?",
    "Explain what this computes and its complexity, then rewrite it with a generator expression:\n\n"
    "def f(xs):\n    total = 0\n    for x in xs:\n        if x % 2 == 0:\n            total += x * x\n    return total",
]

# A retrieval-sized prompt (~900 tokens of sources), for the time to first token when the prompt is long.
LONG_PROMPT = ("Answer from these sources.\n\n" + "\n".join(
    f"[{i}] The Nimbus R{i} router supports up to {16 * i} devices, has a {i % 3 + 1}-year warranty and gets "
    f"firmware updates every {i + 2} weeks; its status light blinks amber when the WAN cable is missing."
    for i in range(1, 22)) + "\n\nQuestion: which router supports the most devices, and for how long is it covered?")


def naive_run(model, tokenizer, prompt: str, max_tokens: int) -> tuple[str, int, float, float]:
    """(text, tokens, seconds, time to first token) with plain fp32 transformers generate."""
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    result = {}

    def generate() -> None:
        with torch.inference_mode():
            result["ids"] = model.generate(**inputs, streamer=streamer, max_new_tokens=max_tokens, do_sample=False)

    started = time.perf_counter()
    thread = threading.Thread(target=generate)
    thread.start()
    first, parts = None, []
    for piece in streamer:
        if piece and first is None:
            first = time.perf_counter() - started
        parts.append(piece)
    thread.join()
    elapsed = time.perf_counter() - started
    return "".join(parts), result["ids"].shape[1] - inputs["input_ids"].shape[1], elapsed, first or elapsed


def shipped_run(generator: LocalGenerator, prompt: str, max_tokens: int) -> tuple[str, int, float, float]:
    reply = generator.generate([{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0)
    return reply.text, reply.usage.completion_tokens, reply.latency_s, reply.time_to_first_token_s or reply.latency_s


def summarise(runs: list[tuple[str, int, float, float]]) -> dict[str, float]:
    tokens = sum(r[1] for r in runs)
    seconds = sum(r[2] for r in runs)
    decode = sum(r[1] - 1 for r in runs) / sum(r[2] - r[3] for r in runs)
    return {"tok_s": tokens / seconds, "decode_tok_s": decode, "ttft_p50": statistics.median(r[3] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128, help="max new tokens in the speed runs")
    parser.add_argument("--home", help="data home (default: ASSISTANT_HOME or the per-user one)")
    args = parser.parse_args()
    settings = load_settings(**({"home": args.home} if args.home else {}))

    folder = weights_folder(resolve_source(settings.model), settings.model_cache_dir)  # dequantise once, untimed
    LocalGenerator.from_settings(settings)  # first load may also build the CPU kernels; untimed
    loads = []
    for _ in range(3):
        started = time.perf_counter()
        generator = LocalGenerator.from_settings(settings)
        loads.append(time.perf_counter() - started)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    naive = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()

    same = sum(naive_run(naive, tokenizer, p, 32)[0] == shipped_run(generator, p, 32)[0] for p in PROMPTS)
    base = summarise([naive_run(naive, tokenizer, p, args.tokens) for p in PROMPTS])
    ours = summarise([shipped_run(generator, p, args.tokens) for p in PROMPTS])
    long_tokens = generator.count_tokens(as_messages([{"role": "user", "content": LONG_PROMPT}]))
    long_base = statistics.median(naive_run(naive, tokenizer, LONG_PROMPT, 8)[3] for _ in range(3))
    long_ours = statistics.median(shipped_run(generator, LONG_PROMPT, 8)[3] for _ in range(3))

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"Generation, {datetime.date.today()}, {os.cpu_count()} cores ({cpu}), torch {torch.__version__}, "
          f"{len(PROMPTS)} prompts, up to {args.tokens} new tokens, greedy\n")
    print("| | naive fp32 generate | local backend as shipped | ratio |")
    print("|---|---|---|---|")
    print(f"| tokens/s (prefill included) | {base['tok_s']:.1f} | {ours['tok_s']:.1f} | "
          f"{ours['tok_s'] / base['tok_s']:.2f}× |")
    print(f"| decode tokens/s | {base['decode_tok_s']:.1f} | {ours['decode_tok_s']:.1f} | "
          f"{ours['decode_tok_s'] / base['decode_tok_s']:.2f}× |")
    print(f"| time to first token, median | {base['ttft_p50']:.3f} s | {ours['ttft_p50']:.3f} s | "
          f"{base['ttft_p50'] / ours['ttft_p50']:.2f}× |")
    print(f"| time to first token, {long_tokens}-token prompt (median of 3) | {long_base:.3f} s | {long_ours:.3f} s | "
          f"{long_base / long_ours:.2f}× |")
    print(f"| first 32 greedy tokens identical to naive | — | {same}/{len(PROMPTS)} prompts | |")
    print(f"| cached model load (best of 3) | — | {min(loads):.2f} s | |")
    print(f"\nformat: {generator.weight_format}")


if __name__ == "__main__":
    main()
