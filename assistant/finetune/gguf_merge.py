"""A LoRA adapter merged into its GGUF base, written as one GGUF file that llama.cpp, Ollama and LM Studio load.

The base's metadata (architecture, tokenizer, chat template) is copied unchanged, so the merged model tokenises and
is prompted exactly like the base; every weight is written in f16 (vectors in f32) as W + (alpha / r) · B · A, using
the adapter already converted to llama.cpp's tensor names and layouts (`assistant/models/lora_gguf.py`). llama.cpp's
own quantiser then makes the requested format. Tensors are streamed one at a time: a 7 B model needs one layer's
worth of memory, not the whole model in fp32.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

# The formats `finetune export --quant` offers, as llama.cpp's file types (llama_ftype).
FILE_TYPES = {"f16": 1, "q8_0": 7, "q4_k_m": 15}


def merge(base: Path, lora: Path, out: Path) -> None:
    """Write base + adapter as an f16 GGUF at `out`."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter, Keys
    from gguf.quants import dequantize

    reader, adapter = GGUFReader(str(base)), GGUFReader(str(lora))
    scale = float(adapter.get_field(Keys.Adapter.LORA_ALPHA).contents())
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for tensor in adapter.tensors:
        name, _, part = tensor.name.rpartition(".")  # blk.0.attn_q.weight.lora_a
        pairs.setdefault(name, {})[part] = dequantize(tensor.data, tensor.tensor_type)
    arch = reader.get_field(Keys.General.ARCHITECTURE).contents()
    writer = GGUFWriter(str(out), arch)
    for field in reader.fields.values():
        if field.name == Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # the writer writes these itself
        value = 1 if field.name == Keys.General.FILE_TYPE else field.contents()  # 1 = mostly f16
        kind = field.types[0]
        writer.add_key_value(field.name, value, kind, sub_type=field.types[-1] if kind == GGUFValueType.ARRAY else None)

    def weights(tensor) -> np.ndarray:
        data = dequantize(tensor.data, tensor.tensor_type)
        if tensor.name in pairs:  # A: (r, in), B: (out, r) in numpy's order, like the base's (out, in)
            a, b = pairs[tensor.name]["lora_a"], pairs[tensor.name]["lora_b"]
            data = data + (scale / a.shape[0]) * (b @ a)
        return data.astype(np.float16 if data.ndim >= 2 else np.float32)

    missing = sorted(set(pairs) - {t.name for t in reader.tensors})
    if missing:
        raise ValueError(f"the adapter changes tensors the base does not have: {', '.join(missing[:3])}")
    for tensor in reader.tensors:
        shape = tuple(int(n) for n in reversed(tensor.shape))  # numpy order
        dtype = np.float16 if len(shape) >= 2 else np.float32
        writer.add_tensor_info(tensor.name, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(weights(tensor))
    writer.close()


def quantize(source: Path, out: Path, quant: str, threads: int) -> None:
    """llama.cpp's quantiser: `source` (f16/f32 GGUF) → `out` in `quant` (one of FILE_TYPES)."""
    from assistant.models.llama_lib import load_llama_cpp

    llama_cpp = load_llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FILE_TYPES[quant]
    params.nthread = threads
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params)) != 0:
        raise RuntimeError(f"llama.cpp could not quantise {source.name} to {quant}")
