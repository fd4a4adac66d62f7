"""`/v1/models`: what the server answers to (catalog.py), and deleting a fine-tuned model as OpenAI does."""

from __future__ import annotations

from fastapi import APIRouter, Request

from assistant.server import catalog
from assistant.server.errors import APIError
from assistant.server.ft_jobs import JobStore

router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request):
    return {"object": "list", "data": [m.to_dict() for m in catalog.catalog(request.app.state.server.settings)]}


@router.get("/v1/models/{model_id:path}")
async def retrieve(model_id: str, request: Request):
    return catalog.resolve(request.app.state.server.settings, model_id).to_dict()


@router.delete("/v1/models/{model_id:path}")
async def delete(model_id: str, request: Request):
    from assistant.finetune.registry import Registry

    state = request.app.state.server
    served = catalog.resolve(state.settings, model_id)
    if served.kind != "fine-tuned" and not model_id.startswith("fine-tuned:"):
        raise APIError(400, f"{model_id} is not a fine-tuned model; only those can be deleted.", param="model")
    name = served.fine_tuned
    store = JobStore(state.settings)
    for record in store.list():  # the job that made it stays `succeeded`, as OpenAI keeps it
        if record.name == name and record.status not in {"succeeded", "failed", "cancelled"}:
            record.status = store.status(record)
            store.save(record)
    Registry.from_settings(state.settings).remove(name)
    state.forget(name)
    return {"id": model_id, "object": "model", "deleted": True}
