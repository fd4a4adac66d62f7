"""The optional reranking stage: a sentence-transformers CrossEncoder re-scores the fused top-N passages (it reads
question and passage together, which a bi-encoder cannot) and the best k are kept.

`ASSISTANT_RERANKER` takes a local CrossEncoder folder (bring your own; nothing is downloaded) or the name of one
trained here (`assistant finetune train DATA --target reranker --name NAME`).
"""

from __future__ import annotations

import time
from pathlib import Path

from assistant import hf
from assistant.config import Settings
from assistant.errors import ModelUnavailable

RERANKER_DIR = "reranker"


def reranker_source(settings: Settings) -> Path | None:
    """The configured reranker's folder, or None when reranking is off."""
    if not settings.reranker:
        return None
    from assistant.finetune.registry import Registry

    registry = Registry.from_settings(settings)
    name = settings.reranker
    if "/" not in name and registry.exists(name):
        record = registry.get(name)
        if record.target != "reranker" or not record.ready:
            raise ModelUnavailable(f"{name!r} is a {record.target} model ({record.status}), not a ready reranker.")
        return registry.folder(name) / RERANKER_DIR
    folder = Path(name).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelUnavailable(f"ASSISTANT_RERANKER={name} is neither a reranker trained here nor a CrossEncoder "
                               "folder (with config.json); rerankers are never downloaded.")
    return folder


class Reranker:
    def __init__(self, folder: Path, device: str = "cpu") -> None:
        from sentence_transformers import CrossEncoder

        hf.quiet()
        try:
            self.model = CrossEncoder(str(folder), device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"Could not load the reranker at {folder}: {exc}") from None
        self.name = folder.name if folder.name != RERANKER_DIR else folder.parent.name
        self.last_ms = 0.0  # how long the last call took: reported per query

    @classmethod
    def from_settings(cls, settings: Settings) -> Reranker | None:
        from assistant.device import resolve_device

        folder = reranker_source(settings)
        return None if folder is None else cls(folder, resolve_device(settings.device).name)

    def scores(self, query: str, texts: list[str]) -> list[float]:
        started = time.perf_counter()
        values = self.model.predict([(query, text) for text in texts], batch_size=32, show_progress_bar=False,
                                    convert_to_numpy=True) if texts else []
        self.last_ms = (time.perf_counter() - started) * 1000
        return [float(v) for v in values]
