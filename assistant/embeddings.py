"""Text → normalised vectors, with a sentence-transformers model (the bundled all-MiniLM-L6-v2 by default)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from assistant import bundled, hf
from assistant.config import Settings
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
    def __init__(self, folder: Path, name: str, batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

        hf.quiet()
        try:
            self.model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"Could not load the embedder at {folder}: {exc}") from None
        self.name = name
        self.dimension = int(self.model.get_embedding_dimension())
        self.batch_size = batch_size
        self.max_tokens = int(self.model.max_seq_length)

    @classmethod
    def from_settings(cls, settings: Settings) -> SentenceTransformerEmbedder:
        if settings.embedder is None:
            return cls(bundled.EMBEDDER.path(), bundled.EMBEDDER.name, settings.embed_batch_size)
        folder = Path(settings.embedder).expanduser()
        if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
            raise ModelUnavailable(
                f"ASSISTANT_EMBEDDER={settings.embedder} is not a sentence-transformers model folder; "
                "embedders are never downloaded. Leave it unset for the bundled all-MiniLM-L6-v2."
            )
        return cls(folder, folder.name, settings.embed_batch_size)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # encode() already sorts by length internally, so padding is minimal within each batch.
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)

    def tokenize(self, text: str) -> list[int]:
        return self.model.tokenizer.encode(text, add_special_tokens=False)
