"""The `openai` backend: the official client, so one code path serves OpenAI, vLLM, Ollama, TGI and friends.

Timeouts and retries (connection errors, 408/409/429/5xx with back-off) are the client's own. Every API failure
becomes a one-line BackendError that never contains the key.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai

from assistant.config import DEFAULT_OPENAI_MODEL, Settings
from assistant.errors import BackendError, ConfigError
from assistant.models.base import BaseGenerator, GenerationOptions, Message, StopSequence, StreamEnd, Usage

OFFICIAL_URL = "https://api.openai.com/v1"
# Self-hosted servers accept any key; the client insists on one, so send a placeholder rather than fail.
PLACEHOLDER_KEY = "not-needed"


class OpenAIGenerator(BaseGenerator):
    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        defaults: GenerationOptions | None = None,
    ) -> None:
        super().__init__(model, defaults)
        self.client = make_client(base_url, api_key, timeout, max_retries)
        self.base_url = base_url or OFFICIAL_URL
        self.runtime = f"OpenAI-compatible API at {self.base_url}"
        # OpenAI's newer models reject `max_tokens`; most compatible servers only know `max_tokens`.
        self._length_param = "max_completion_tokens" if base_url is None else "max_tokens"

    @classmethod
    def from_settings(cls, settings: Settings, model: str | None = None) -> OpenAIGenerator:
        return cls(
            model or settings.model or DEFAULT_OPENAI_MODEL,
            base_url=settings.openai_base_url,
            api_key=_key_of(settings),
            timeout=settings.openai_timeout,
            max_retries=settings.openai_max_retries,
            defaults=GenerationOptions(settings.max_tokens, settings.temperature, settings.top_p, settings.seed),
        )

    def _stream(self, messages: list[Message], options: GenerationOptions) -> Iterator[str | StreamEnd]:
        usage, finish, pieces = None, "stop", 0
        try:
            response = self.client.chat.completions.create(
                model=self.model_id,
                messages=[{"role": m.role, "content": m.content} for m in messages],
                temperature=options.temperature,
                top_p=options.top_p,
                seed=options.seed,
                stream=True,
                stream_options={"include_usage": True},
                **({"stop": list(options.stop)} if options.stop else {}),
                **{self._length_param: options.max_tokens},
            )
            with response:  # leaving it closes the connection, which ends the server's generation
                for chunk in response:
                    if chunk.usage is not None:
                        usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    text = "".join(c.delta.content for c in chunk.choices if c.delta and c.delta.content)
                    if any(c.finish_reason == "length" for c in chunk.choices):
                        finish = "length"
                    if text:
                        pieces += 1
                        try:
                            yield text
                        except StopSequence:
                            finish = "stop"
                            break
        except openai.OpenAIError as exc:
            raise self.explain(exc) from None
        # A server that ignores include_usage: each streamed delta is one token on every server we know of.
        yield StreamEnd(usage or Usage(0, pieces), finish)

    def check(self) -> str:
        """Ask the server whether the configured model exists; a one-line summary or a BackendError."""
        try:
            self.client.models.retrieve(self.model_id)
        except openai.OpenAIError as exc:
            raise self.explain(exc) from None
        return f"model {self.model_id} is available at {self.base_url}"

    def explain(self, exc: openai.OpenAIError) -> BackendError:
        where = where_of(self.client)
        match exc:
            case openai.PermissionDeniedError():
                text = f"{where} refused access (403): this key may not use model {self.model_id!r}."
            case openai.NotFoundError():
                text = (f"Model {self.model_id!r} was not found at {where} (404). Check ASSISTANT_MODEL, "
                        "and that ASSISTANT_OPENAI_BASE_URL ends with /v1 where the server expects it.")
            case _:
                text = None
        return api_error(exc, self.client, text)


# Shared with the fine-tuning jobs (assistant/finetune/openai_jobs.py): one way to build the client from settings,
# one wording for the failures every endpoint shares, one redaction of the key.


def make_client(base_url: str | None, api_key: str | None, timeout: float, max_retries: int) -> openai.OpenAI:
    if not api_key and base_url is None:
        raise ConfigError(
            "The openai backend needs an API key: set OPENAI_API_KEY (or ASSISTANT_OPENAI_API_KEY), or point "
            "ASSISTANT_OPENAI_BASE_URL at an OpenAI-compatible server that needs none."
        )
    return openai.OpenAI(api_key=api_key or PLACEHOLDER_KEY, base_url=base_url or OFFICIAL_URL, timeout=timeout,
                         max_retries=max_retries)


def client_from_settings(settings: Settings) -> openai.OpenAI:
    return make_client(settings.openai_base_url, _key_of(settings), settings.openai_timeout,
                       settings.openai_max_retries)


def where_of(client: openai.OpenAI) -> str:
    return str(client.base_url).rstrip("/")


def api_error(exc: openai.OpenAIError, client: openai.OpenAI, text: str | None = None) -> BackendError:
    """One line without the key: `text` when the caller knows what a status means for its endpoint (a 404 is a
    missing model for chat, a missing job for fine-tuning), else the wording every endpoint shares."""
    text = text or describe(exc, where_of(client))
    key = client.api_key
    return BackendError(text.replace(key, "***") if key and key != PLACEHOLDER_KEY else text)


def describe(exc: openai.OpenAIError, where: str) -> str:
    match exc:
        case openai.AuthenticationError():
            return (f"{where} rejected the API key (401). Set a valid OPENAI_API_KEY "
                    "(or ASSISTANT_OPENAI_API_KEY).")
        case openai.RateLimitError():
            return f"{where} is rate-limiting this key or its quota is used up (429); wait, or check billing."
        case openai.APITimeoutError():
            return (f"{where} did not answer within the timeout; raise ASSISTANT_OPENAI_TIMEOUT or check the "
                    "server's load.")
        case openai.APIConnectionError():
            return (f"Could not connect to {where}: is the server running and reachable? "
                    "Check ASSISTANT_OPENAI_BASE_URL.")
        case openai.APIStatusError():
            return f"{where} answered {exc.status_code}: {message_of(exc)}"
        case _:
            return f"The request to {where} failed: {exc}"


def message_of(exc: openai.APIStatusError) -> str:
    """The server's own explanation, one line (OpenAI puts it in body.error.message)."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return " ".join(str(error["message"]).split())
    return " ".join(str(exc.message).split())


def _key_of(settings: Settings) -> str | None:
    return settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
