"""Shared fixtures. The real bundled model is loaded once per test session; every test gets its own data home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from assistant.config import Settings  # noqa: E402  (after the offline switches)
from tests.chroma_server import start_chroma  # noqa: E402
from tests.fakes import FakeGenerator  # noqa: E402
from tests.limits import QUICK_GUARD_S  # noqa: E402
from tests.openai_server import KEY, OpenAICompatibleServer  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No user configuration leaks in: a fresh data home, no assistant.toml, no ASSISTANT_/OPENAI_ variables."""
    for name in list(os.environ):
        if name.startswith(("ASSISTANT_", "OPENAI_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("ASSISTANT_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture(autouse=True)
def no_stray_jobs(isolated_environment: Path):
    """A test that fails half-way must not leave a detached background job (assistant/jobs.py) running."""
    yield
    from assistant import jobs
    from assistant.config import load_settings
    from assistant.errors import AssistantError

    try:
        settings = load_settings()
    except AssistantError:  # a test of bad settings: it started no job
        return
    for job in jobs.list_jobs(settings):
        if job.running:
            jobs.stop(settings, job, force=True)


@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data home shared by the session, so the bundled GGUF is dequantised (for training) and adapters are
    converted for llama.cpp only once."""
    return tmp_path_factory.mktemp("model-home")


@pytest.fixture(scope="session")
def local_generator(model_home: Path):
    """The bundled GGUF in llama.cpp: what the local backend serves by default."""
    from assistant.models.local import load_local

    return load_local(Settings(home=model_home, max_tokens=24))


@pytest.fixture(scope="session")
def hf_model_folder(model_home: Path) -> Path:
    """The bundled model as a Hugging Face folder (its dequantised safetensors): what training loads."""
    from assistant.models.local_weights import resolve_source, weights_folder

    return weights_folder(resolve_source(None), Settings(home=model_home).model_cache_dir)


@pytest.fixture(scope="session")
def transformers_generator(model_home: Path, hf_model_folder: Path):
    """The same model from a Hugging Face folder, in transformers: the local backend's other runtime."""
    from assistant.models.local import load_local

    return load_local(Settings(home=model_home, max_tokens=24), model=str(hf_model_folder))


@pytest.fixture(scope="session")
def openai_server():
    with OpenAICompatibleServer() as server:
        yield server


@pytest.fixture
def openai_generator(openai_server: OpenAICompatibleServer):
    from assistant.models.openai_compat import OpenAIGenerator

    return OpenAIGenerator("echo-model", base_url=openai_server.base_url, api_key=KEY, max_retries=0)


@pytest.fixture
def fake_generator() -> FakeGenerator:
    return FakeGenerator()


@pytest.fixture
def trained(model_home: Path, tmp_path_factory: pytest.TempPathFactory):
    """(settings, registry) with the LoRA model `facts` (tests/trained.py), trained once per session."""
    from tests.trained import train_facts

    return train_facts(Settings(home=model_home, max_tokens=24), tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory: pytest.TempPathFactory):
    """A real `chroma run` on 127.0.0.1 for the session: tests that share it use their own collection names."""
    try:
        server, url = start_chroma(tmp_path_factory.mktemp("chroma-server"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield url
    server.terminate()
    server.wait(timeout=QUICK_GUARD_S)
