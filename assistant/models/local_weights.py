"""Finding and loading a local causal LM: the bundled GGUF (dequantised once, then cached), a .gguf file, or a
Hugging Face model folder; optionally with a LoRA adapter. Never touches the network.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from assistant import bundled
from assistant.errors import ModelUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalModelSource:
    """Where the weights come from. `gguf_file` is set for GGUF sources, `folder` for Hugging Face folders."""

    name: str
    gguf_file: Path | None = None
    folder: Path | None = None


def resolve_source(model: str | None) -> LocalModelSource:
    if model is None:
        path = bundled.GENERATOR.path()
        return LocalModelSource(name=bundled.GENERATOR.name, gguf_file=path)
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return LocalModelSource(name=path.stem, gguf_file=path)
    if path.is_dir() and (path / "config.json").is_file():
        return LocalModelSource(name=path.name, folder=check_model_folder(path))
    raise ModelUnavailable(
        f"Local model {model!r} is neither a .gguf file nor a Hugging Face model folder (with config.json). "
        "The local backend never downloads models: point ASSISTANT_MODEL at a local folder or .gguf file, "
        "leave it unset for the bundled SmolLM2, or use ASSISTANT_BACKEND=openai."
    )


def weights_folder(source: LocalModelSource, cache_root: Path) -> Path:
    """A folder from_pretrained can load quickly: the source folder, or the cached dequantised GGUF."""
    if source.folder is not None:
        return source.folder
    assert source.gguf_file is not None
    stat = source.gguf_file.stat()
    cached = cache_root / f"{source.gguf_file.stem}-{stat.st_size}"
    if (cached / "config.json").is_file():
        return cached
    cache_root.mkdir(parents=True, exist_ok=True)
    # Two processes starting at once must not both spend ~15 s dequantising, nor see a half-written folder.
    with FileLock(str(cache_root / f"{cached.name}.lock"), timeout=600):
        if not (cached / "config.json").is_file():
            _dequantise_into(source.gguf_file, cached)
    return cached


def _dequantise_into(gguf_file: Path, target: Path) -> None:
    """GGUF → safetensors. A GGUF-loaded model refuses save_pretrained, so its state goes into a fresh model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from assistant import hf

    hf.quiet()  # no progress bar in a command's output
    log.info("Dequantising %s once; later loads use the safetensors cache in %s", gguf_file.name, target)
    folder, name = gguf_file.parent, gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        fresh.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)  # atomic: the cache is either complete or absent
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# Pickled weights run code when loaded (torch's weights_only loader narrows that, but a refusal says why up front).
PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
# A tokenizer or config file this large is not a real one (the largest real tokenizer.json files are ~35 MB): it
# would only exhaust memory while being parsed.
MAX_METADATA_BYTES = 256 * 2**20


def check_model_folder(folder: Path) -> Path:
    """A Hugging Face model folder whose weights are safetensors and whose metadata files are of sane size."""
    if not any(folder.glob("*.safetensors")):
        pickled = sorted(p.name for pattern in PICKLED_WEIGHTS for p in folder.glob(pattern))
        if pickled:
            raise ModelUnavailable(
                f"The model folder {folder} stores its weights as pickled {', '.join(pickled[:3])}, which can run "
                "arbitrary code when loaded; it is refused. Use a copy saved as safetensors (transformers: "
                "save_pretrained(..., safe_serialization=True)), or a .gguf file.")
        raise ModelUnavailable(f"The model folder {folder} has no .safetensors weights.")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (folder / name).is_file() and (size := (folder / name).stat().st_size) > MAX_METADATA_BYTES:
            raise ModelUnavailable(f"{folder / name} is {size / 2**20:.0f} MiB, not a real {name} (over "
                                   f"{MAX_METADATA_BYTES / 2**20:.0f} MiB); it is refused.")
    return folder


def check_adapter(adapter: Path) -> Path:
    """A LoRA adapter folder with safetensors weights; pickled .bin weights are refused (they can run code)."""
    adapter = adapter.expanduser()
    if not (adapter / "adapter_config.json").is_file():
        raise ModelUnavailable(f"No LoRA adapter at {adapter}: expected adapter_config.json in that folder.")
    if not (adapter / "adapter_model.safetensors").is_file():
        if any(adapter.glob("*.bin")):
            raise ModelUnavailable(
                f"The adapter at {adapter} stores its weights as a pickled .bin file, which can run arbitrary code "
                "when loaded; it is refused. Convert it to adapter_model.safetensors (peft: save_pretrained with "
                "safe_serialization=True)."
            )
        raise ModelUnavailable(f"The adapter at {adapter} has no adapter_model.safetensors.")
    try:
        json.loads((adapter / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"The adapter config {adapter / 'adapter_config.json'} is unreadable: {exc}") from None
    return adapter
