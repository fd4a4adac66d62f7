"""A peft LoRA adapter as a llama.cpp LoRA GGUF, so llama.cpp applies it at run time on the quantised base.

The conversion is llama.cpp's own `convert_lora_to_gguf.py` (kept from the source archive at install): it knows
each architecture's tensor names and layouts (e.g. the rotary permutation of q/k rows in Llama-family GGUFs),
which a converter of ours would have to track. It is cached, keyed by the adapter's files, so a model is converted
once (a few seconds) however often it is served.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from filelock import FileLock

from assistant.errors import ModelUnavailable
from assistant.models import llama_build
from assistant.models.local_weights import LocalModelSource, check_adapter


def adapter_key(adapter: Path) -> str:
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        digest.update((adapter / name).read_bytes())
    return digest.hexdigest()[:16]


def gguf_adapter(adapter: Path, base: LocalModelSource, cache_root: Path) -> Path:
    """The adapter converted to GGUF (cached under cache_root/lora/)."""
    adapter = check_adapter(adapter)
    target = cache_root / "lora" / f"{adapter_key(adapter)}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=600):
        if not target.is_file():
            _convert(adapter, hf_config_folder(base, cache_root), target)
    return target


def merged_copy(base_f16: Path, lora: Path, cache_root: Path) -> Path:
    """`base_f16` with the adapter merged in, still f16 (cached per adapter). For a small model served from an f16
    copy this costs no precision (the merged weights are f16 either way) and decodes at the base's speed: applied
    at run time, the adapter's extra matrix products cost a 135M model 5-10 % of its decoding speed."""
    from assistant.finetune.gguf_merge import merge

    target = cache_root / "lora" / f"{lora.stem}.merged-f16.gguf"
    if not target.is_file():
        with FileLock(str(target) + ".lock", timeout=600):
            if not target.is_file():
                partial = target.with_suffix(".partial")
                merge(base_f16, lora, partial)
                os.replace(partial, target)
    return target


def hf_config_folder(base: LocalModelSource, cache_root: Path) -> Path:
    """A folder with the base model's Hugging Face config.json: what the converter reads the architecture from.
    A GGUF base has it in its metadata; transformers reads it out without loading any weights."""
    if base.folder is not None:
        return base.folder
    assert base.gguf_file is not None
    folder = cache_root / f"{base.gguf_file.stem}-{base.gguf_file.stat().st_size}-config"
    if not (folder / "config.json").is_file():
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        config = AutoConfig.from_pretrained(base.gguf_file.parent, gguf_file=base.gguf_file.name)
        # The converter picks its architecture by class name, which a config read from GGUF does not carry.
        config.architectures = config.architectures or [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[config.model_type]]
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=cache_root))
        config.save_pretrained(staging)
        os.replace(staging, folder)
    return folder


def _convert(adapter: Path, config_folder: Path, target: Path) -> None:
    script = llama_build.scripts_dir() / "convert_lora_to_gguf.py"
    if not script.is_file():
        raise ModelUnavailable(f"llama.cpp's LoRA converter is missing ({script}); run `make install`.")
    partial = target.with_suffix(".partial")
    done = subprocess.run(
        [sys.executable, str(script), "--base", str(config_folder), "--outtype", "f32", "--outfile", str(partial),
         str(adapter)],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if done.returncode or not partial.is_file():
        partial.unlink(missing_ok=True)
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelUnavailable(f"The adapter at {adapter} could not be converted for llama.cpp: {last}")
    os.replace(partial, target)
