"""Text → normalised vectors, with a sentence-transformers model (the bundled all-MiniLM-L6-v2 by default)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from assistant import bundled, hf
from assistant.config import Settings
from assistant.cpu import has_native_bf16
from assistant.errors import ModelUnavailable


@runtime_checkable
class Embedder(Protocol):
    name: str  # recorded with every collection: vectors from two embedders must never be mixed
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dimension), each row of unit length."""

    def tokenize(self, text: str) -> list[int]:
        """The embedder's own tokens: chunk sizes are measured in them, so nothing is truncated unseen."""


class SentenceTransformerEmbedder:
    def __init__(self, folder: Path, name: str, batch_size: int = 32, precision: str = "auto",
                 device: str = "cpu") -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        hf.quiet()
        try:
            self.model = SentenceTransformer(str(folder), device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"Could not load the embedder at {folder}: {exc}") from None
        # bf16 embeds ~2× faster where the CPU has bf16 instructions; vectors keep cosine ≥ 0.998 with fp32 and the
        # same nearest neighbours (docs/BENCHMARKS.md). Elsewhere bf16 is emulated and slower, so auto keeps fp32.
        native_bf16 = device == "cpu" and has_native_bf16()
        self.precision = "bf16" if precision == "bf16" or (precision == "auto" and native_bf16) else "fp32"
        if self.precision == "bf16":
            self.model = self.model.to(torch.bfloat16)
        self.name = name
        self.dimension = int(self.model.get_embedding_dimension())
        self.batch_size = batch_size
        self.max_tokens = int(self.model.max_seq_length)

    @classmethod
    def from_settings(cls, settings: Settings) -> SentenceTransformerEmbedder:
        from assistant.device import resolve_device

        folder, name = embedder_source(settings)
        return cls(folder, name, settings.embed_batch_size, settings.embed_precision,
                   resolve_device(settings.device).name)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # encode() already sorts by length internally, so padding is minimal within each batch.
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        vectors = np.asarray(vectors, dtype=np.float32)
        # Normalised again in fp32: a bf16 model's own normalisation leaves norms up to ~0.4 % off one.
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def tokenize(self, text: str) -> list[int]:
        return self.model.tokenizer.encode(text, add_special_tokens=False)


def embedder_source(settings: Settings, check: bool = True) -> tuple[Path, str]:
    """(folder, name) of the configured embedder, without loading it: the bundled all-MiniLM-L6-v2, one tuned here
    (`ASSISTANT_EMBEDDER=NAME`, from `assistant finetune train … --target embedder`), or a sentence-transformers
    folder. The name is what a knowledge base records about the vectors it holds; `check=False` gives it without
    looking at the folder (a knowledge base's guard then says what to do first)."""
    if settings.embedder is None:
        return bundled.EMBEDDER.path(), bundled.EMBEDDER.name
    from assistant.finetune.registry import Registry

    registry = Registry.from_settings(settings)
    name = settings.embedder
    if "/" not in name and registry.exists(name):
        record = registry.get(name)
        if record.target != "embedder" or not record.ready:
            raise ModelUnavailable(f"ASSISTANT_EMBEDDER={name} names a {record.target} model ({record.status}), not "
                                   "a ready embedder; see `assistant finetune list`.")
        return registry.folder(name) / "embedder", name
    folder = Path(name).expanduser()
    if check and not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        raise ModelUnavailable(
            f"ASSISTANT_EMBEDDER={name} is neither an embedder tuned here nor a sentence-transformers model folder; "
            "embedders are never downloaded. Leave it unset for the bundled all-MiniLM-L6-v2."
        )
    return folder, folder.name
