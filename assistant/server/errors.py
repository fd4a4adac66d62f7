"""Errors in OpenAI's JSON shape ({"error": {"message", "type", "param", "code"}}), so the official SDK raises the
exception class it would raise against OpenAI (400 BadRequestError, 401 AuthenticationError, 404 NotFoundError,
413, 429 RateLimitError, 500 InternalServerError, 502 when the generator's own server failed)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.errors import AssistantError, BackendError, ConfigError, ModelUnavailable

log = logging.getLogger(__name__)


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}


def not_found(what: str, identifier: str, code: str | None = None) -> APIError:
    return APIError(404, f"No {what} with id {identifier!r}.", param="id", code=code)


def body(message: str, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(body(exc.message, exc.type, exc.param, exc.code), exc.status, headers=exc.headers)

    @app.exception_handler(AssistantError)
    async def assistant_error(request: Request, exc: AssistantError) -> JSONResponse:
        # The library's own one-line messages: what was wrong with the request, or with a model it named; or, for
        # a BackendError, what the generator's own server (OpenAI, vLLM, ...) did: a 502, which the SDKs retry.
        if isinstance(exc, BackendError):
            return JSONResponse(body(str(exc), "server_error", code="upstream_error"), 502)
        status = 404 if isinstance(exc, ModelUnavailable) else 400
        code = "model_not_found" if status == 404 else "invalid_value" if isinstance(exc, ConfigError) else None
        return JSONResponse(body(str(exc), code=code), status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(part) for part in first["loc"] if part != "body") or None
        return JSONResponse(body(f"{param or 'request'}: {first['msg']}", param=param), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = f"Unknown path {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(body(message), exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s", request.url.path)
        return JSONResponse(body(f"Internal error: {type(exc).__name__}; see the server log.", "server_error"), 500)
