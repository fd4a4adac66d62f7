"""The `local` backend's runtime for Hugging Face model folders (and for GGUF files where llama.cpp is not
available): a transformers causal LM on the chosen device, streamed through a generation thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from assistant import hf
from assistant.device import Device
from assistant.errors import AssistantError, BackendError
from assistant.models.base import (
    BaseGenerator,
    GenerationOptions,
    Message,
    StopSequence,
    StreamEnd,
    Usage,
    check_chat_template,
)
from assistant.models.local_weights import check_adapter

hf.quiet()


class _StopWhenSet(StoppingCriteria):
    """Lets a reader that went away (closed stream, Streamlit rerun) stop the generation thread."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> bool:
        return self.event.is_set()


class TransformersGenerator(BaseGenerator):
    def __init__(self, model, tokenizer, model_id: str, defaults: GenerationOptions | None = None,
                 runtime: str = "transformers", load_seconds: float = 0.0) -> None:
        super().__init__(model_id, defaults)
        self.model = model
        self.tokenizer = tokenizer
        self.context_window = int(getattr(model.config, "max_position_embeddings", 2048))
        self.runtime = runtime
        self.load_seconds = load_seconds
        self._lock = threading.Lock()  # one generation at a time: they would only fight over the same cores

    @classmethod
    def load(cls, folder: Path, model_id: str, defaults: GenerationOptions, *, device: Device, precision: str,
             adapter: Path | None = None, why: str = "") -> TransformersGenerator:
        started = time.perf_counter()
        dtype = _dtype(precision, device)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        if tokenizer.chat_template:
            check_chat_template(lambda chat: tokenizer.apply_chat_template(chat, tokenize=False), model_id)
        lm = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        if adapter is not None:
            from peft import PeftModel

            # Merged into the weights: inference then costs exactly what the base model costs.
            lm = PeftModel.from_pretrained(lm, str(check_adapter(adapter))).merge_and_unload()
        lm = lm.to(device=device.name, dtype=dtype)
        runtime = f"transformers ({device.name}, {str(dtype).removeprefix('torch.')}{f'; {why}' if why else ''})"
        return cls(lm, tokenizer, model_id, defaults, runtime, time.perf_counter() - started)

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self._encode(messages)["input_ids"][0])

    def _encode(self, messages: list[Message]):
        chat = [{"role": m.role, "content": m.content} for m in messages]
        return self.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def _stream(self, messages: list[Message], options: GenerationOptions) -> Iterator[str | StreamEnd]:
        inputs = self._encode(messages)
        prompt_tokens = inputs["input_ids"].shape[1]
        if prompt_tokens + options.max_tokens > self.context_window:
            raise AssistantError(
                f"The prompt ({prompt_tokens} tokens) plus max_tokens ({options.max_tokens}) exceeds the model's "
                f"context window of {self.context_window} tokens; shorten the conversation or lower max_tokens."
            )
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop = threading.Event()
        result: dict[str, object] = {}
        kwargs = dict(
            **inputs.to(self.model.device),
            streamer=streamer,
            max_new_tokens=options.max_tokens,
            stopping_criteria=StoppingCriteriaList([_StopWhenSet(stop)]),
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            **self._sampling(options),
        )

        def run() -> None:
            with self._lock, torch.inference_mode():
                try:
                    torch.manual_seed(options.seed)
                    result["ids"] = self.model.generate(**kwargs)
                except Exception as exc:  # surfaced to the reader below, not lost in the thread
                    result["error"] = exc
                    streamer.end()

        thread = threading.Thread(target=run, name="local-generate", daemon=True)
        thread.start()
        stopped = False
        try:
            for piece in streamer:
                try:
                    yield piece
                except StopSequence:
                    stopped = True
                    break
        finally:
            stop.set()  # no-op when generation already finished; stops it when the reader left early
            thread.join()
        if "error" in result:
            raise BackendError(f"Local generation failed: {result['error']}") from result["error"]
        output = result["ids"][0, prompt_tokens:]  # type: ignore[index]
        completion_tokens = int(output.shape[0])
        ended_on_eos = completion_tokens > 0 and int(output[-1]) in self._eos_ids()
        finish = "length" if completion_tokens >= options.max_tokens and not (ended_on_eos or stopped) else "stop"
        yield StreamEnd(Usage(prompt_tokens, completion_tokens), finish)

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos])
        ids.add(self.tokenizer.eos_token_id)
        return ids

    @staticmethod
    def _sampling(options: GenerationOptions) -> dict:
        if options.greedy:
            return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return {"do_sample": True, "temperature": options.temperature, "top_p": options.top_p, "top_k": None}


def _dtype(precision: str, device: Device) -> torch.dtype:
    """auto: fp32 on a CPU (bf16 is faster there but its greedy text drifts), bf16 on a GPU that has it, else fp16."""
    if precision == "auto":
        if not device.is_gpu:
            return torch.float32
        return torch.bfloat16 if device.kind != "cuda" or torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
