"""`POST /v1/chat/completions` and the legacy `POST /v1/completions`, over the strategies.

A model id picks the strategy (catalog.py). The conversation's last message is the question and the ones before it
the history (trimmed to the context window by the strategy, as in the app). The sources a RAG answer used and the
examples a few-shot answer used come back in extra top-level fields, `sources` and `examples` (in the final chunk
when streaming), numbered as the answer's `[n]` citations; OpenAI's clients ignore fields they do not know.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from assistant.models import Message
from assistant.server import catalog
from assistant.server.errors import APIError

router = APIRouter()
log = logging.getLogger("uvicorn.error")  # the server's own log, which uvicorn prints


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI parameters we do not use (user, logprobs…) are accepted


class ContentPart(_Lenient):
    type: str
    text: str = ""


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = ""

    def as_message(self) -> Message:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])
        return Message("system" if self.role == "developer" else self.role, text)


class StreamOptions(_Lenient):
    include_usage: bool = False


class _Generation(_Lenient):
    model: str
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0)
    stop: str | list[str] | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None

    def options(self, max_tokens: int | None) -> dict:
        if self.n != 1:
            raise APIError(400, "Only n=1 is supported: ask again for another answer.", param="n")
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return {"max_tokens": max_tokens, "temperature": self.temperature, "top_p": self.top_p, "seed": self.seed,
                "stop": tuple(stop) if stop else None}


class ChatRequest(_Generation):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class CompletionRequest(_Generation):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for legacy completions


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatRequest, request: Request):
    messages = [m.as_message() for m in body.messages]
    if messages[-1].role != "user":
        raise APIError(400, "The last message must be the user's question.", param="messages")
    options = body.options(body.max_completion_tokens or body.max_tokens)
    return await _answer(request, body, messages[-1].content, messages[:-1], options, chat=True)


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request):
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise APIError(400, "Send one prompt per request.", param="prompt")
    return await _answer(request, body, prompts[0], [], body.options(body.max_tokens), chat=False)


async def _answer(request: Request, body: _Generation, question: str, history: list[Message], options: dict,
                  chat: bool):
    state = request.app.state.server
    served = catalog.resolve(state.settings, body.model)
    if served.kind == "embedder":
        raise APIError(400, f"{served.id} is an embedding model: use POST /v1/embeddings.", param="model")
    strategy = await anyio.to_thread.run_sync(state.strategy, served)  # the first use loads the model
    options = {k: v for k, v in options.items() if v is not None}
    reply = _Reply(served.id, chat)
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(_events(state, strategy, question, history, options, reply, usage),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    async with state.gate.turn():
        answer = await anyio.to_thread.run_sync(lambda: strategy.answer(question, history, **options))
    return reply.whole(answer)


async def _events(state, strategy, question, history, options, reply: _Reply, usage: bool) -> AsyncIterator[str]:
    async with state.gate.turn():
        stream = await anyio.to_thread.run_sync(lambda: strategy.stream(question, history, **options))
        done = False
        try:
            if reply.chat:
                yield _sse(reply.chunk({"role": "assistant", "content": ""}))
            while (piece := await anyio.to_thread.run_sync(next, stream, None)) is not None:
                yield _sse(reply.chunk({"content": piece} if reply.chat else piece))
            answer = stream.answer
            yield _sse(reply.chunk({} if reply.chat else "", answer.finish_reason) | reply.context(answer))
            if usage:
                yield _sse(reply.usage_chunk(answer))
            yield "data: [DONE]\n\n"
            done = True
        finally:
            # The client may have gone (the task is being cancelled): stop generating so the next request is
            # served at once. Shielded: a cancelled scope would skip it.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(stream.close)
                if not done:
                    log.info("%s: the client went away mid-stream; its generation was stopped", reply.id)


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


class _Reply:
    """The wire shapes of one answer: chat.completion(.chunk) or text_completion."""

    def __init__(self, model: str, chat: bool) -> None:
        self.model, self.chat = model, chat
        self.id = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
        self.created = int(time.time())

    def _head(self, chunk: bool) -> dict:
        kind = "chat.completion" + (".chunk" if chunk else "") if self.chat else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "system_fingerprint": None}

    def chunk(self, delta: dict | str, finish: str | None = None) -> dict:
        choice = {"index": 0, "finish_reason": finish, "logprobs": None}
        choice |= {"delta": delta} if self.chat else {"text": delta}
        return self._head(True) | {"choices": [choice]}

    def usage_chunk(self, answer) -> dict:
        return self._head(True) | {"choices": [], "usage": _usage(answer)}

    def whole(self, answer) -> dict:
        choice = {"index": 0, "finish_reason": answer.finish_reason, "logprobs": None}
        choice |= {"message": {"role": "assistant", "content": answer.text, "refusal": None}} if self.chat \
            else {"text": answer.text}
        return self._head(False) | {"choices": [choice], "usage": _usage(answer)} | self.context(answer)

    @staticmethod
    def context(answer) -> dict:
        sources = [{"number": s.number, "source": s.source, "location": s.location, "snippet": s.snippet,
                    "score": round(s.score, 6), "cited": s.number in answer.cited} for s in answer.sources]
        examples = [{"prompt": e.prompt, "completion": e.completion} for e in answer.examples]
        return {"sources": sources, "examples": examples, "strategy": answer.strategy}


def _usage(answer) -> dict:
    usage = answer.usage
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}
