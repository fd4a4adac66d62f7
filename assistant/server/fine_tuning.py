"""`/v1/fine_tuning/jobs`: create, list, retrieve, cancel, events, checkpoints — and the queue that starts them.

Jobs train the configured local base model with the existing LoRA trainer in a background job (assistant/jobs.py),
one at a time; the others wait as `queued`. The scheduler is a loop in the server; since all state is on disk it
picks up where it was after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time

import anyio
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from assistant import jobs
from assistant.server import catalog, files
from assistant.server.errors import APIError
from assistant.server.ft_jobs import JobRecord, JobStore, resolve_hyperparameters, train_argv

router = APIRouter()
log = logging.getLogger(__name__)
SCHEDULE_SECONDS = 1.0


class Supervised(BaseModel):
    model_config = ConfigDict(extra="ignore")
    hyperparameters: dict = Field(default_factory=dict)


class Method(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = "supervised"
    supervised: Supervised | None = None


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    training_file: str
    validation_file: str | None = None
    suffix: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9._-]*$")
    seed: int | None = Field(None, ge=0)
    hyperparameters: dict | None = None
    method: Method | None = None


@router.post("/v1/fine_tuning/jobs")
async def create(body: JobRequest, request: Request):
    settings = request.app.state.server.settings
    bases = catalog.base_models(settings)
    if body.model not in bases:
        raise APIError(400, f"Model {body.model!r} cannot be fine-tuned here; base models: {', '.join(bases)}.",
                       param="model", code="model_not_available")
    if body.method is not None and body.method.type != "supervised":
        raise APIError(400, "Only supervised fine-tuning is supported.", param="method.type")
    for param in ("training_file", "validation_file"):
        file_id = getattr(body, param)
        if file_id is not None and files.meta(settings, file_id)["purpose"] != files.PURPOSE:
            raise APIError(400, f"{file_id} was not uploaded for fine-tuning.", param=param)
    given = (body.method.supervised.hyperparameters if body.method and body.method.supervised else None) \
        or body.hyperparameters or {}
    store = JobStore(settings)
    record = store.create(model=body.model, base_path=bases[body.model], training_file=body.training_file,
                          validation_file=body.validation_file, hyperparameters=resolve_hyperparameters(given),
                          suffix=body.suffix or None, seed=body.seed if body.seed is not None else 0)
    return store.describe(record)


@router.get("/v1/fine_tuning/jobs")
async def list_jobs(request: Request, after: str | None = None, limit: int = Query(20, ge=1, le=100)):
    store = JobStore(request.app.state.server.settings)
    records = store.list()
    return _page([store.describe(r) for r in records], after, limit)


@router.get("/v1/fine_tuning/jobs/{job_id}")
async def retrieve(job_id: str, request: Request):
    store = JobStore(request.app.state.server.settings)
    return store.describe(store.get(job_id))


@router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
async def cancel(job_id: str, request: Request):
    settings = request.app.state.server.settings
    store = JobStore(settings)
    record = store.get(job_id)
    status = store.status(record)
    if status in {"succeeded", "failed", "cancelled"}:
        raise APIError(400, f"Job {job_id} has already ended ({status}); nothing to cancel.", param="job_id")
    record.status, record.finished_at = "cancelled", int(time.time())
    store.save(record)
    if record.background_job is not None:  # the run checkpoints at its next step and stops
        jobs.stop(settings, jobs.get(settings, record.background_job))
    return store.describe(record)


@router.get("/v1/fine_tuning/jobs/{job_id}/events")
async def events(job_id: str, request: Request, after: str | None = None, limit: int = Query(20, ge=1, le=1000)):
    store = JobStore(request.app.state.server.settings)
    return _page(list(reversed(store.events(store.get(job_id)))), after, limit)  # newest first, as OpenAI


@router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
async def checkpoints(job_id: str, request: Request, after: str | None = None, limit: int = Query(10, ge=1, le=100)):
    store = JobStore(request.app.state.server.settings)
    return _page(store.checkpoints(store.get(job_id)), after, limit)


def _page(items: list[dict], after: str | None, limit: int) -> dict:
    """OpenAI's cursor pagination: the items after the one with id `after`."""
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    page = items[:limit]
    return {"object": "list", "data": page, "has_more": len(items) > len(page),
            "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}


# -- the queue ---------------------------------------------------------------------------------------------------
async def schedule(state) -> None:
    """Start the oldest queued job whenever no training runs. Runs for the server's lifetime."""
    while True:
        try:
            await anyio.to_thread.run_sync(start_next, state.settings)
        except Exception:  # noqa: BLE001  (a broken record must not stop the queue for the others)
            log.exception("fine-tuning scheduler")
        await asyncio.sleep(SCHEDULE_SECONDS)


def start_next(settings) -> JobRecord | None:
    store = JobStore(settings)
    records = store.list()
    if any(store.status(r) == "running" for r in records) or any(j.running for j in jobs.list_jobs(settings,
                                                                                                    "finetune")):
        return None
    queued = [r for r in records if store.status(r) == "queued"]
    if not queued:
        return None
    record = queued[-1]  # the list is newest first
    try:
        data = files.content_path(settings, record.training_file)
        validation = files.content_path(settings, record.validation_file) if record.validation_file else None
    except APIError as exc:  # a file deleted while the job waited
        record.status, record.finished_at = "failed", int(time.time())
        record.error = {"code": "invalid_file", "param": "training_file", "message": exc.message}
        store.save(record)
        return record
    job = jobs.start(settings, "finetune", train_argv(settings, record, data, validation),
                     label=f"fine-tuning job {record.id}", meta={"name": record.name, "provider": "local"})
    record.background_job, record.started_at = job.id, int(time.time())
    store.save(record)
    return record
