"""The FastAPI application: the routes, OpenAI-shaped errors, the key and size guards, and the job queue."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager

from fastapi import FastAPI

from assistant.config import Settings
from assistant.server import chat, embeddings, errors, files, fine_tuning, model_routes
from assistant.server.guards import Guards
from assistant.server.state import ServerState


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        queue = asyncio.create_task(fine_tuning.schedule(app.state.server))
        yield
        queue.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await queue

    app = FastAPI(title="ragtune", summary="An OpenAI-compatible API over the assistant's strategies and fine-tuning",
                  version="1", lifespan=lifespan)
    app.state.server = ServerState(settings)
    errors.install(app)
    for module in (model_routes, chat, embeddings, files, fine_tuning):
        app.include_router(module.router)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    keys = [key.get_secret_value() for key in settings.api_keys]
    app.add_middleware(Guards, keys=keys, max_bytes=int(settings.max_request_mb * 2**20))
    return app
