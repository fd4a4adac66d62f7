"""`POST /v1/embeddings` with the knowledge base's embedder: the vectors retrieval compares (unit length)."""

from __future__ import annotations

import base64
from typing import Literal

import anyio
import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from assistant.server import catalog
from assistant.server.errors import APIError

router = APIRouter()
MAX_INPUTS = 2048  # OpenAI's own bound per request


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    input: str | list[str] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] = "float"  # the Python SDK asks for base64 unless told otherwise


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request):
    state = request.app.state.server
    name = catalog.embedder_name(state.settings)
    if body.model != name:
        raise APIError(404, f"{body.model!r} is not the embedder here; use model={name!r}.", param="model",
                       code="model_not_found")
    texts = [body.input] if isinstance(body.input, str) else body.input
    if len(texts) > MAX_INPUTS or not all(texts):
        raise APIError(400, f"Send 1 to {MAX_INPUTS} non-empty strings.", param="input")
    embedder = await anyio.to_thread.run_sync(state.embedder)
    vectors = await anyio.to_thread.run_sync(embedder.embed, texts)
    tokens = sum(len(embedder.tokenize(text)) for text in texts)
    data = [{"object": "embedding", "index": i, "embedding": _encoded(v, body.encoding_format)}
            for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": name, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _encoded(vector: np.ndarray, encoding: str):
    if encoding == "base64":  # little-endian float32, as OpenAI sends it
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return vector.astype(float).tolist()
