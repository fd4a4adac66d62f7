"""Settings: environment variables prefixed ASSISTANT_, then an optional assistant.toml, then defaults.

`load_settings()` is the one entry point; it turns validation errors into a ConfigError that names the setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from assistant.errors import ConfigError

ENV_PREFIX = "ASSISTANT_"
CONFIG_FILE_ENV = "ASSISTANT_CONFIG"
DEFAULT_CONFIG_FILE = "assistant.toml"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


def _openai_alias(name: str) -> AliasChoices:
    # The openai settings also honour the variables the official client reads, so existing setups just work.
    return AliasChoices(f"{ENV_PREFIX}{name}".lower(), name.lower(), f"openai_{name.split('_', 1)[1]}".lower())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", validate_default=True, populate_by_name=True
    )

    home: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("ragtune")),
        description="Data home: everything the app writes (model cache, stores, fine-tuned models) goes here.",
    )
    backend: Literal["local", "openai"] = Field("local", description="Generator backend.")
    model: str | None = Field(
        None,
        description="local: a Hugging Face model folder or .gguf file (default: the bundled SmolLM2-135M-Instruct); "
        f"openai: a model id (default: {DEFAULT_OPENAI_MODEL}).",
    )
    adapter: Path | None = Field(None, description="local: a LoRA adapter folder (safetensors) to apply.")
    embedder: str | None = Field(
        None, description="A sentence-transformers model folder (default: the bundled all-MiniLM-L6-v2)."
    )
    max_tokens: int = Field(256, ge=1, le=32768, description="Most tokens generated per answer.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 means greedy decoding (reproducible).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass, used when temperature > 0.")
    seed: int = Field(0, ge=0, description="Seed for sampling, so a temperature > 0 run can be repeated.")
    threads: int | None = Field(None, ge=1, le=256, description="local: CPU threads (default: all cores).")
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="local models, embedder and training: auto (CUDA, then Apple MPS, then CPU), cpu, cuda[:N], mps.",
    )
    local_cpu: Literal["auto", "avx2"] = Field(
        "auto", description="GGUF models: llama.cpp built for this CPU (auto), or its AVX2-only build (avx2, made at "
        "install on CPUs with AVX-512: the path CPUs without AVX-512 run).",
    )
    local_precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Hugging Face models in transformers: auto = fp32 on a CPU (keeps greedy output), bf16 "
        "(or fp16) on a GPU. GGUF models keep their own quantisation. LoRA training: auto = bf16 autocast where the "
        "CPU or GPU has native bf16, else fp32; fp32 = always fp32.",
    )
    chroma_url: str | None = Field(
        None, description="A Chroma server (http://host:port) instead of the embedded store under the data home."
    )
    collection: str = Field(
        "knowledge",
        min_length=3,
        max_length=63,
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z0-9]$",
        description="Knowledge base (Chroma collection) to ingest into and answer from.",
    )
    top_k: int = Field(4, ge=1, le=50, description="rag: passages put into the prompt.")
    relevance_threshold: float | None = Field(
        0.25, ge=-1.0, le=1.0,
        description="rag: passages less similar (cosine) to the question are dropped; none left → the answer says "
        "nothing relevant was found instead of guessing.",
    )
    examples: Path | None = Field(None, description="few-shot: the example bank (JSONL or CSV).")
    fewshot_k: int = Field(3, ge=1, le=20, description="few-shot: examples put into the prompt.")
    retrieval_mode: Literal["dense", "bm25", "hybrid"] = Field("hybrid", description="rag: how passages are found.")
    reranker: str | None = Field(
        None, description="rag: a CrossEncoder that re-scores the top passages — a folder, or the name of one "
        "trained here (assistant finetune train DATA --target reranker). Off when unset.",
    )
    rerank_top_n: int = Field(20, ge=1, le=200, description="rag: passages the reranker re-scores, before keeping k.")
    chunk_size: int = Field(200, ge=32, le=2048, description="Chunk size in embedder tokens.")
    chunk_overlap: int = Field(30, ge=0, description="Tokens shared by neighbouring chunks.")
    embed_batch_size: int = Field(32, ge=1, le=1024, description="Chunks embedded per batch.")
    embed_precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="Embedder compute format. auto: bf16 where the CPU has bf16 instructions, else fp32."
    )
    max_file_mb: float = Field(50.0, gt=0, description="Larger files are skipped as too_large.")
    max_unpacked_mb: float = Field(200.0, gt=0, description="Bound on a .docx's decompressed size (zip bombs).")
    max_archive_entries: int = Field(5000, ge=1, description="Bound on the number of entries in a .docx.")
    openai_base_url: str | None = Field(
        None,
        validation_alias=_openai_alias("OPENAI_BASE_URL"),
        description="Any OpenAI-compatible server (vLLM, Ollama, TGI); default: api.openai.com.",
    )
    openai_api_key: SecretStr | None = Field(None, validation_alias=_openai_alias("OPENAI_API_KEY"))
    openai_timeout: float = Field(60.0, gt=0, description="Seconds before a request to the server gives up.")
    openai_max_retries: int = Field(2, ge=0, le=10, description="Retries on connection errors, 429 and 5xx.")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="assistant serve: keys clients must send (Authorization: Bearer …), "
        "comma-separated; none = no authentication (allowed on 127.0.0.1 only).",
    )
    server_queue: int = Field(16, ge=0, le=10_000, description="assistant serve: requests that may wait for the "
                              "model; more get 429 with Retry-After.")
    max_request_mb: float = Field(50.0, gt=0, description="assistant serve: largest request body (uploads too).")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "warning", description="Python logging to stderr (debug includes the openai and httpx clients' own); keys "
        "are masked in every line.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return [key.strip() for key in value.split(",") if key.strip()] if isinstance(value, str) else value

    @field_validator("openai_base_url", "chroma_url")
    @classmethod
    def _must_be_http(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})")
        return self

    @property
    def model_cache_dir(self) -> Path:
        return self.home / "models"

    @property
    def store_dir(self) -> Path:
        return self.home / "chroma"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))


def load_settings(**overrides: object) -> Settings:
    """Read the settings; keyword overrides (e.g. from CLI flags) win over everything else."""
    config_file = os.environ.get(CONFIG_FILE_ENV)
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"{CONFIG_FILE_ENV} points at {config_file}, which is not a file.")
    try:
        settings = Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except ValueError as exc:  # e.g. a malformed assistant.toml
        raise ConfigError(f"Could not read the settings: {exc}") from None
    from assistant.logs import configure_logging

    configure_logging(settings)
    return settings


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "chunk_overlap"  # the only cross-field rule
        name = name.lower().removeprefix(ENV_PREFIX.lower())
        shown = "" if "api_key" in name or not error["loc"] else f" (got {error.get('input')!r})"
        lines.append(f"{ENV_PREFIX}{name.upper()} / `{name}` in {DEFAULT_CONFIG_FILE}: {error['msg']}{shown}")
    return "Invalid setting: " + "; ".join(lines)
