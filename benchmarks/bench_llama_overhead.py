"""What the `local` backend adds on top of llama.cpp itself, measured without cross-process noise: in one process, on
the same model file and the same greedy tokens, our generator (chat template, streaming, stop checks, UTF-8
decoding) against a bare loop of llama.cpp's own `llama_decode` + greedy sampler through the C API, interleaved.

    .venv/bin/python benchmarks/bench_llama_overhead.py [--model FILE.gguf] [--tokens 128] [--rounds 7]
    ASSISTANT_LOCAL_CPU=avx2 .venv/bin/python benchmarks/bench_llama_overhead.py      # the AVX2-only build

(`bench_generation.py` compares with llama-bench in separate processes; on 2 shared cores those runs differ by
±15 % from one to the next, more than the difference this measures.)
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.config import Settings  # noqa: E402
from assistant.models.llama_lib import load_llama_cpp  # noqa: E402
from assistant.models.local import load_local  # noqa: E402
from assistant.prompts import plain_chat  # noqa: E402

QUESTION = "Write a long story about a router that travels the world."


def bare_loop(llama_cpp, llm, prompt: list[int], tokens: int) -> tuple[list[int], float]:
    """llama.cpp's decode loop as its own examples write it: one batch for the prompt, then one token at a time."""
    ctx, vocab = llm.ctx, llm._model.vocab
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
    sampler = llama_cpp.llama_sampler_init_greedy()
    array = (llama_cpp.llama_token * len(prompt))(*prompt)
    llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(array, len(prompt)))
    out, started = [], None
    one = (llama_cpp.llama_token * 1)()
    while len(out) < tokens:
        token = llama_cpp.llama_sampler_sample(sampler, ctx, -1)
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        if started is None:
            started = time.perf_counter()  # decode rate from the first sampled token on, as for ours
        out.append(token)
        one[0] = token
        llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(one, 1))
    llama_cpp.llama_sampler_free(sampler)
    return out, (len(out) - 1) / (time.perf_counter() - started)


def ours(generator, tokens: int) -> tuple[int, float]:
    generator.llm.reset()  # no prefix cache: the bare loop evaluates the prompt too
    stream = generator.stream(plain_chat(QUESTION), max_tokens=tokens)
    for _ in stream:
        pass
    generation = stream.generation
    return generation.usage.completion_tokens, (generation.usage.completion_tokens - 1) / (
        generation.latency_s - generation.time_to_first_token_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a GGUF file (default: the bundled model as the backend serves it)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--home", default=str(ROOT / "benchmarks" / ".data" / "home"))
    args = parser.parse_args()
    settings = Settings(home=Path(args.home), max_tokens=args.tokens)  # ASSISTANT_LOCAL_CPU=avx2: the AVX2 build
    llama_cpp = load_llama_cpp(settings.local_cpu)
    generator = load_local(settings, model=args.model)
    prompt = generator._encode(plain_chat(QUESTION))
    ours_rates, bare_rates = [], []
    for _ in range(args.rounds):  # interleaved: drift in the machine's speed hits both alike
        n_ours, rate = ours(generator, args.tokens)
        ours_rates.append(rate)
        bare, rate = bare_loop(llama_cpp, generator.llm, prompt, args.tokens)
        bare_rates.append(rate)
    same = n_ours == len(bare)
    print(f"\n{generator.model_id} ({generator.runtime}), {len(prompt)}-token prompt, {n_ours} greedy tokens "
          f"({'the same count' if same else f'bare loop: {len(bare)}'}), {args.rounds} interleaved rounds\n")
    print("| | decode tok/s (median) | min–max |")
    print("|---|---|---|")
    for name, rates in (("bare llama_decode loop (llama.cpp itself)", bare_rates), ("ours (local backend)", ours_rates)):
        print(f"| {name} | {statistics.median(rates):.1f} | {min(rates):.1f}–{max(rates):.1f} |")
    ratios = [o / b for o, b in zip(ours_rates, bare_rates)]
    print(f"\nours / llama.cpp per round: median {statistics.median(ratios):.3f}× "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}); goal ≥ 0.95×")


if __name__ == "__main__":
    main()
