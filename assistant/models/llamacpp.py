"""The `local` backend's runtime for GGUF models: llama.cpp, through llama-cpp-python.

Quantised weights stay quantised in memory and are multiplied by llama.cpp's own kernels for this CPU (AVX2,
AVX-512, NEON) or a GPU; a LoRA adapter is applied at run time on top of them (not merged), so a fine-tuned model
decodes at the base model's speed. The prompt is the model's own chat template from its GGUF metadata, rendered
the way transformers renders it for training, so a model is served exactly as it was trained.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from assistant.errors import AssistantError, BackendError, ModelUnavailable
from assistant.models.base import (
    BaseGenerator,
    GenerationOptions,
    Message,
    StopSequence,
    StreamEnd,
    Usage,
    check_chat_template,
)
from assistant.models.llama_lib import built_features, load_llama_cpp

# A bigger window costs KV-cache memory for every loaded model; RAG prompts here are ~1-2k tokens. Models trained on
# less get their own length.
MAX_CONTEXT = 8192
# llama.cpp multiplies Q4_1/Q5_1 weights by generic row-by-row dot products when it processes a prompt in a batch
# (its tiled and repacked kernels cover Q4_0, Q8_0, the K-quants, IQ4_NL and F16): the bundled Q4_1 SmolLM2 took
# 4.6 s to prefill a 1,100-token RAG prompt, an f16 copy of it 1.95 s, decoding ~15 % slower (docs/BENCHMARKS.md).
# A small model in such a format is therefore served from an f16 copy, made once by llama.cpp's own quantiser.
SLOW_PREFILL_TYPES = {"3": "Q4_1", "9": "Q5_1"}  # general.file_type (llama_ftype MOSTLY_Q4_1, MOSTLY_Q5_1)
F16_COPY_LIMIT = 1 << 30  # bytes of f16 weights; a bigger model stays as it is (memory first)
# What a model without a template in its metadata is prompted with (ChatML: the most common instruct format).
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


class LlamaCppGenerator(BaseGenerator):
    def __init__(self, llm, model_id: str, defaults: GenerationOptions, runtime: str, load_seconds: float) -> None:
        super().__init__(model_id, defaults)
        llama_cpp = load_llama_cpp()
        self.llm = llm
        self.context_window = llm.n_ctx()
        self.runtime = runtime
        self.load_seconds = load_seconds
        self._vocab = llm._model.vocab
        self._is_eog = llama_cpp.llama_vocab_is_eog
        template = llm.metadata.get("tokenizer.chat_template") or CHATML
        model = llm._model
        special = lambda token: model.token_get_text(token) if token >= 0 else ""  # noqa: E731
        self._template = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
            template, eos_token=special(model.token_eos()), bos_token=special(model.token_bos()))
        check_chat_template(lambda chat: self._template(messages=chat), model_id)
        self._lock = threading.Lock()  # one generation at a time: they would only fight over the same cores

    @classmethod
    def load(cls, gguf_file: Path, model_id: str, defaults: GenerationOptions, *, threads: int,
             gpu_layers: int = 0, lora: Path | None = None, note: str = "") -> LlamaCppGenerator:
        llama_cpp = load_llama_cpp()
        started = time.perf_counter()
        try:
            llm = llama_cpp.Llama(
                model_path=str(gguf_file), n_ctx=min(_trained_context(gguf_file), MAX_CONTEXT), n_batch=512,
                n_threads=threads, n_threads_batch=threads, n_gpu_layers=gpu_layers,
                # Flash attention: measured faster on the CPU too, prompts and decoding (docs/BENCHMARKS.md).
                flash_attn=True, lora_path=str(lora) if lora else None, verbose=False,
            )
        except (ValueError, RuntimeError) as exc:  # llama.cpp could not read the file or the adapter
            raise ModelUnavailable(f"llama.cpp could not load {gguf_file.name}"
                                   + (f" with the adapter {lora}" if lora else "") + f": {exc}") from None
        where = f"GPU, {gpu_layers if gpu_layers >= 0 else 'all'} layers" if gpu_layers else "CPU"
        runtime = f"llama.cpp ({where}, {cpu_features(llama_cpp)}" + (f"; {note}" if note else "") + ")" + (
            ", LoRA at run time" if lora else "")
        return cls(llm, model_id, defaults, runtime, time.perf_counter() - started)

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self._encode(messages))

    def _encode(self, messages: list[Message]) -> list[int]:
        prompt = self._template(messages=[{"role": m.role, "content": m.content} for m in messages]).prompt
        # The template writes any BOS itself; special tokens in it (<|im_start|>) are tokens, not text.
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def _stream(self, messages: list[Message], options: GenerationOptions) -> Iterator[str | StreamEnd]:
        prompt = self._encode(messages)
        if len(prompt) + options.max_tokens > self.context_window:
            raise AssistantError(
                f"The prompt ({len(prompt)} tokens) plus max_tokens ({options.max_tokens}) exceeds the model's "
                f"context window of {self.context_window} tokens; shorten the conversation or lower max_tokens."
            )
        with self._lock:
            yield from self._decode(prompt, options)

    def _decode(self, prompt: list[int], options: GenerationOptions) -> Iterator[str | StreamEnd]:
        self.llm.set_seed(options.seed)
        # temperature 0 is llama.cpp's greedy sampler; top_k 0 and min_p 0 turn off samplers we do not offer.
        tokens = self.llm.generate(prompt, temp=options.temperature, top_p=options.top_p, top_k=0, min_p=0.0,
                                   repeat_penalty=1.0)
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span two tokens
        generated, finish = 0, "length"
        try:
            for token in tokens:
                if self._is_eog(self._vocab, token):
                    finish = "stop"
                    break
                generated += 1
                piece = text.decode(self.llm.detokenize([token]))
                if piece:
                    try:
                        yield piece
                    except StopSequence:
                        finish = "stop"
                        break
                if generated >= options.max_tokens:
                    break
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"Local generation failed: {exc}") from exc
        finally:
            tokens.close()
        if finish == "length" and (rest := text.decode(b"", final=True)):
            yield rest
        yield StreamEnd(Usage(len(prompt), generated), finish)  # type: ignore[arg-type]


def served_file(gguf_file: Path, cache_root: Path) -> tuple[Path, str]:
    """(the GGUF file llama.cpp loads, a note on it): the file itself, or its cached f16 copy (see above)."""
    kind = metadata(gguf_file).get("general.file_type", "")
    slow = SLOW_PREFILL_TYPES.get(kind)
    if slow is None or gguf_file.stat().st_size * 16 / 5 > F16_COPY_LIMIT:  # ~5 bits a weight now, 16 in f16
        return gguf_file, ""
    copy = cache_root / f"{gguf_file.stem}-{gguf_file.stat().st_size}.f16.gguf"
    if not copy.is_file():
        from filelock import FileLock

        cache_root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(copy) + ".lock", timeout=600):
            if not copy.is_file():
                _requantize(gguf_file, copy, file_type=1)  # 1 = mostly f16
    return copy, f"f16 copy of its {slow} weights, for fast prompts"


def _requantize(source: Path, target: Path, file_type: int) -> None:
    import ctypes

    llama_cpp = load_llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize = file_type, True
    partial = target.with_suffix(".partial")
    if llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params)) != 0:
        partial.unlink(missing_ok=True)
        raise ModelUnavailable(f"llama.cpp could not convert {source.name}")
    partial.replace(target)  # atomic: the cache holds a whole file or none


def metadata(gguf_file: Path) -> dict[str, str]:
    """The GGUF's metadata as llama.cpp reads it, without loading any weights (~0.1 s)."""
    llama_cpp = load_llama_cpp()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    try:
        model = llama_cpp._internals.LlamaModel(path_model=str(gguf_file), params=params, verbose=False)
    except ValueError as exc:
        raise ModelUnavailable(f"llama.cpp cannot read {gguf_file}: {exc}") from None
    try:
        return model.metadata()
    finally:
        model.close()


def _trained_context(gguf_file: Path) -> int:
    """The context length the model was trained with."""
    meta = metadata(gguf_file)
    return int(meta.get(f"{meta.get('general.architecture')}.context_length") or 2048)


def cpu_features(llama_cpp) -> str:
    """What llama.cpp's CPU kernels are for ("AVX512 kernels"), and whether AMX was left out (llama_build.py)."""
    from assistant.cpu import cpu_flags

    have = built_features(llama_cpp)
    isa = next((isa for isa in ("AVX512", "AVX2", "NEON", "AVX") if isa in have), "generic")
    left_out = ", AMX left out: llama.cpp #20824" if "amx_int8" in cpu_flags() and "AMX_INT8" not in have else ""
    return f"{isa} kernels{left_out}"
