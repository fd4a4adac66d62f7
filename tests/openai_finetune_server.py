"""The loopback OpenAI server, extended with the files + fine_tuning.jobs protocol.

Jobs are scripted and advance one stage per `GET /v1/fine_tuning/jobs/{id}` (not by wall time), so a test that
polls without sleeping still sees the whole life of a job: validating → running → step events → the end.
- `SUCCEEDS` trains for 3 × 10 steps (losses in the metrics events), then succeeds with
  `ft:MODEL:org:SUFFIX:abc123`, which the chat endpoint then serves;
- `FAILS` fails at its second poll with `FAILURE`;
- `quota_exhausted = True` makes job creation answer 429 insufficient_quota.
Uploads must have purpose fine-tune and be chat-format JSONL (400 otherwise, as OpenAI does).
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from tests.openai_server import OpenAICompatibleServer, _Handler

SUCCEEDS = "gpt-4o-mini-2024-07-18"
FAILS = "fail-model"
FAILURE = "Training file has 3 example(s), but must have at least 10 examples."
TOTAL_STEPS = 30
TRAIN_LOSSES = (1.25, 0.81, 0.42)  # one metrics event per running poll, steps 10, 20, 30
VALID_LOSSES = (1.31, 0.95, 0.66)


@dataclass
class Job:
    id: str
    request: dict
    status: str = "validating_files"
    polls: int = 0
    events: list[dict] = field(default_factory=list)  # oldest first; the API lists them newest first
    fine_tuned_model: str | None = None
    error: dict | None = None
    trained_tokens: int | None = None

    def as_json(self) -> dict:
        hyperparameters = self.request.get("method", {}).get("supervised", {}).get("hyperparameters", {})
        return {"id": self.id, "object": "fine_tuning.job", "created_at": 0, "organization_id": "org",
                "model": self.request["model"], "status": self.status, "training_file": self.request["training_file"],
                "validation_file": self.request.get("validation_file"), "fine_tuned_model": self.fine_tuned_model,
                "error": self.error, "trained_tokens": self.trained_tokens, "result_files": [],
                "seed": self.request.get("seed", 0), "finished_at": None,
                "hyperparameters": {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto",
                                    **hyperparameters},
                "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}}


def chat_format_error(text: str) -> str | None:
    """The first reason a file is not chat-format JSONL, like OpenAI's upload check; None when it is fine."""
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            messages = json.loads(line)["messages"]
            roles = [m["role"] for m in messages if isinstance(m["content"], str)]
        except (ValueError, KeyError, TypeError):
            return f"Invalid file format. Line {number}: expected a JSON object with a 'messages' list."
        if len(roles) != len(messages) or "assistant" not in roles:
            return f"Invalid file format. Line {number}: every example needs text messages and an assistant reply."
    return None if text.strip() else "Invalid file format. The file is empty."


class _FineTuningHandler(_Handler):
    server: FineTuningServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.removeprefix("/v1/fine_tuning/jobs/").split("/")
        if not url.path.startswith("/v1/fine_tuning/jobs/"):
            return super().do_GET()
        if not self._authorised() or not (job := self._job(parts[0])):
            return
        if parts[1:] == ["events"]:
            self._events(job, parse_qs(url.query))
        else:
            self.server.advance(job)
            self._send_json(200, job.as_json())

    def do_POST(self) -> None:
        if not self.path.startswith(("/v1/files", "/v1/fine_tuning/")):
            return super().do_POST()
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not self._authorised():
            return
        if self.path == "/v1/files":
            self._upload(body)
        elif self.path == "/v1/fine_tuning/jobs":
            self._create(json.loads(body))
        elif self.path.endswith("/cancel"):  # /v1/fine_tuning/jobs/{id}/cancel
            if job := self._job(self.path.split("/")[4]):
                self._cancel(job)
        else:
            self._error(404, "Unknown path.", "not_found")

    def _upload(self, body: bytes) -> None:
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        form = {part.get_param("name", header="content-disposition"): part
                for part in email.message_from_bytes(head + body, policy=email.policy.HTTP).iter_parts()}
        if form.get("purpose") is None or form["purpose"].get_content().strip() != "fine-tune":
            return self._error(400, "This tool only uploads with purpose 'fine-tune'.", "invalid_purpose")
        content = form["file"].get_payload(decode=True)
        if problem := chat_format_error(content.decode("utf-8", errors="replace")):
            return self._error(400, problem, "invalid_file_format")
        file_id = f"file-{next(self.server.ids)}"
        self.server.files[file_id] = content
        self._send_json(200, {"id": file_id, "object": "file", "bytes": len(content), "created_at": 0,
                              "filename": form["file"].get_filename(), "purpose": "fine-tune", "status": "processed"})

    def _create(self, request: dict) -> None:
        if self.server.quota_exhausted:
            message = "You exceeded your current quota, please check your plan and billing details."
            return self._send_json(429, {"error": {"message": message, "type": "insufficient_quota",
                                                   "code": "insufficient_quota"}})
        if request["model"] not in (SUCCEEDS, FAILS):
            return self._error(400, f"Model {request['model']} is not available for fine-tuning or does not exist.",
                               "model_not_available")
        for key in ("training_file", "validation_file"):
            if request.get(key) is not None and request[key] not in self.server.files:
                return self._error(400, f"Invalid file ID: {request[key]}.", "invalid_file")
        job = Job(f"ftjob-{next(self.server.ids)}", request)
        self.server.jobs[job.id] = job
        self.server.event(job, f"Validating training file: {request['training_file']}")
        self._send_json(200, job.as_json())

    def _cancel(self, job: Job) -> None:
        if job.status in ("succeeded", "failed", "cancelled"):
            return self._error(400, f"Job {job.id} has already {job.status}.", "invalid_state")
        job.status = "cancelled"
        self.server.event(job, "Fine-tuning job cancelled")
        self._send_json(200, job.as_json())

    def _events(self, job: Job, query: dict) -> None:
        newest_first = job.events[::-1]
        if "after" in query:  # a cursor pages towards older events, as OpenAI's does
            ids = [e["id"] for e in newest_first]
            newest_first = newest_first[ids.index(query["after"][0]) + 1:] if query["after"][0] in ids else []
        limit = int(query.get("limit", ["20"])[0])
        self._send_json(200, {"object": "list", "data": newest_first[:limit], "has_more": len(newest_first) > limit})

    def _job(self, job_id: str) -> Job | None:
        if job_id not in self.server.jobs:
            self._error(404, f"Could not find fine-tune job: {job_id}.", "fine_tune_not_found")
            return None
        return self.server.jobs[job_id]


class FineTuningServer(OpenAICompatibleServer):
    handler = _FineTuningHandler

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, Job] = {}
        self.ids = itertools.count(1)
        self.quota_exhausted = False

    def event(self, job: Job, message: str, level: str = "info", data: dict | None = None) -> None:
        job.events.append({"id": f"ftevent-{next(self.ids)}", "object": "fine_tuning.job.event",
                           "created_at": int(time.time()), "level": level, "message": message,
                           "data": data or {}, "type": "metrics" if data else "message"})

    def advance(self, job: Job) -> None:
        """One poll's worth of progress: started, then a metrics event per poll, then the end."""
        if job.status in ("succeeded", "failed", "cancelled"):
            return
        job.polls += 1
        if job.polls == 1:
            job.status = "running"
            self.event(job, "Fine-tuning job started")
        elif job.request["model"] == FAILS:
            job.status, job.error = "failed", {"code": "invalid_n_examples", "message": FAILURE,
                                               "param": "training_file"}
            self.event(job, f"The job failed: {FAILURE}", level="error")
        else:
            self._train_step(job, job.polls - 2)

    def _train_step(self, job: Job, index: int) -> None:
        step = (index + 1) * TOTAL_STEPS // len(TRAIN_LOSSES)
        data = {"step": step, "total_steps": TOTAL_STEPS, "train_loss": TRAIN_LOSSES[index]}
        if job.request.get("validation_file"):
            data["valid_loss"] = VALID_LOSSES[index]
        self.event(job, f"Step {step}/{TOTAL_STEPS}: training loss={TRAIN_LOSSES[index]:.4f}", data=data)
        if index + 1 == len(TRAIN_LOSSES):
            suffix = job.request.get("suffix") or ""
            job.fine_tuned_model = f"ft:{job.request['model']}:org:{suffix}:abc123"
            job.status = "succeeded"
            job.trained_tokens = len(self.files[job.request["training_file"]]) // 4 * 3  # ~4 bytes a token, 3 epochs
            self.models.add(job.fine_tuned_model)  # the chat endpoint serves it from now on
            self.event(job, f"New fine-tuned model created: {job.fine_tuned_model}")
            self.event(job, "The job has successfully completed")
