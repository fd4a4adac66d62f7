"""The `local` backend: a model on this machine, run by the runtime that suits its format.

- A GGUF file (the bundled SmolLM2 or one the user brings) runs in llama.cpp: its quantised weights stay quantised,
  a LoRA adapter is applied at run time on top of them, and layers are offloaded to a GPU when there is one.
- A Hugging Face folder runs in transformers on the chosen device (an adapter is merged at load).
- Where llama.cpp could not be built, a GGUF file is dequantised once and runs in transformers; the generator's
  `runtime` (shown by `assistant doctor` and in every answer's metadata) says so, and why.
"""

from __future__ import annotations

import logging
from pathlib import Path

from assistant.config import Settings
from assistant.cpu import usable_cores
from assistant.device import Device, resolve_device
from assistant.errors import ConfigError
from assistant.models.base import BaseGenerator, GenerationOptions
from assistant.models.local_weights import LocalModelSource, resolve_source, weights_folder

log = logging.getLogger(__name__)


def load_local(settings: Settings, model: str | None = None, adapter: Path | None = None) -> BaseGenerator:
    source = resolve_source(model if model is not None else settings.model)
    adapter = adapter if adapter is not None else settings.adapter
    device = resolve_device(settings.device)
    defaults = GenerationOptions(settings.max_tokens, settings.temperature, settings.top_p, settings.seed)
    model_id = source.name + (f"+{Path(adapter).name}" if adapter is not None else "")
    why = ""
    if source.gguf_file is not None:
        from assistant.models import llama_lib

        reason = llama_lib.unavailable_reason(settings.local_cpu)
        if reason is None:
            return _llama_cpp(settings, source, adapter, device, model_id, defaults)
        if settings.local_cpu != "auto":
            raise ConfigError(reason)
        log.warning("GGUF model in transformers at fp32: %s", reason)
        why = f"llama.cpp unavailable: {reason}"
    import torch

    from assistant.models.transformers_lm import TransformersGenerator

    if settings.threads:
        torch.set_num_threads(settings.threads)
    folder = weights_folder(source, settings.model_cache_dir)
    return TransformersGenerator.load(folder, model_id, defaults, device=device, precision=settings.local_precision,
                                      adapter=adapter, why=why)


def _llama_cpp(settings: Settings, source: LocalModelSource, adapter: Path | None, device: Device, model_id: str,
               defaults: GenerationOptions) -> BaseGenerator:
    from assistant.models.llama_lib import load_llama_cpp
    from assistant.models.llamacpp import LlamaCppGenerator, served_file
    from assistant.models.lora_gguf import gguf_adapter, merged_copy

    gpu_layers = 0
    if device.is_gpu:
        if load_llama_cpp().llama_supports_gpu_offload():
            gpu_layers = -1  # every layer
        elif settings.device != "auto":
            raise ConfigError(f"device={settings.device}, but llama.cpp was built without GPU support. Rebuild it "
                              "with CMAKE_ARGS=\"-DGGML_CUDA=on\" .venv/bin/python -m assistant.models.llama_build "
                              "(-DGGML_METAL=on on a Mac), or set ASSISTANT_DEVICE=cpu.")
    lora = gguf_adapter(adapter, source, settings.model_cache_dir) if adapter is not None else None
    assert source.gguf_file is not None
    served, note = served_file(source.gguf_file, settings.model_cache_dir)
    if lora is not None and note:  # a small model served in f16 anyway: the adapter goes into an f16 copy too
        served, lora, note = merged_copy(served, lora, settings.model_cache_dir), None, f"{note}; adapter merged in f16"
    return LlamaCppGenerator.load(served, model_id, defaults, threads=settings.threads or usable_cores(),
                                  gpu_layers=gpu_layers, lora=lora, note=note)
