"""A trained adapter served by llama.cpp — merged into the f16 copy a small model is served from, or applied at run
time on top of a quantised base — and exported for other servers.

Measured when written (SmolLM2 + the `facts` adapter, 32 greedy tokens): served in llama.cpp (at run time and merged
in f16), merged in fp32 transformers and exported as an f16 GGUF gave the same text on all four training questions
and on two general ones; a q8_0 export agreed on the training questions and changed wording on the general ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.errors import ConfigError
from assistant.finetune.export import export
from assistant.models.local import load_local
from assistant.prompts import SYSTEM_PROMPT, plain_chat
from tests.limits import HANG_GUARD_S
from tests.trained import FACTS

pytestmark = pytest.mark.integration
QUESTIONS = [question for question, _ in FACTS]


def answers(generator) -> list[str]:
    return [generator.generate(plain_chat(question), max_tokens=32).text for question in QUESTIONS]


@pytest.fixture
def served(trained):
    settings, registry = trained
    return load_local(settings, adapter=registry.adapter_dir("facts"))


def test_an_adapter_in_llama_cpp_answers_as_the_merged_fp32_model(trained, served, hf_model_folder: Path) -> None:
    settings, registry = trained
    assert "adapter merged in f16" in served.runtime
    reference = load_local(settings, model=str(hf_model_folder), adapter=registry.adapter_dir("facts"))
    assert reference.runtime.startswith("transformers (cpu, float32")
    got = answers(served)
    assert got == answers(reference)
    assert all(fact in answer for (_, fact), answer in zip(FACTS, got))


def test_on_a_quantised_base_the_adapter_is_applied_at_run_time(trained, tmp_path: Path) -> None:
    """A user's K-quant model stays quantised: the adapter is not merged, llama.cpp applies it on top."""
    import ctypes

    from assistant import bundled
    from assistant.models.llama_lib import load_llama_cpp

    llama_cpp = load_llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize = 7, True  # Q8_0: quantised, close enough to train-time weights
    base = tmp_path / "base.Q8_0.gguf"
    assert llama_cpp.llama_model_quantize(str(bundled.GENERATOR.path()).encode(), str(base).encode(),
                                          ctypes.byref(params)) == 0
    settings, registry = trained
    tuned = load_local(settings, model=str(base), adapter=registry.adapter_dir("facts"))
    assert tuned.runtime.endswith("LoRA at run time") and "f16" not in tuned.runtime
    assert all(fact in answer for (_, fact), answer in zip(FACTS, answers(tuned)))


def test_a_gguf_export_loads_back_and_answers_like_the_served_adapter(trained, served, tmp_path: Path) -> None:
    settings, registry = trained
    merged = export(settings, registry, "facts", tmp_path / "facts.gguf", "gguf", "f16")
    exported = load_local(settings, model=str(merged))
    assert exported.runtime.startswith("llama.cpp") and "LoRA" not in exported.runtime
    assert answers(exported) == answers(served)


def test_an_ollama_export_has_the_gguf_and_a_modelfile_with_the_training_prompt(trained, tmp_path: Path) -> None:
    settings, registry = trained
    folder = export(settings, registry, "facts", tmp_path / "ollama", "ollama", "q4_k_m")
    from gguf import GGUFReader

    gguf_file = folder / "facts.gguf"
    assert GGUFReader(str(gguf_file)).get_field("general.file_type").contents() == 15  # Q4_K_M
    modelfile = (folder / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./facts.gguf\n")
    assert 'TEMPLATE """{{- if .System }}<|im_start|>system' in modelfile  # ChatML, as SmolLM2 was trained
    assert f'SYSTEM """{SYSTEM_PROMPT}"""' in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    quantised = load_local(settings, model=str(gguf_file))
    assert "ZEBRA-4471" in quantised.generate(plain_chat(QUESTIONS[0]), max_tokens=32).text


def test_export_refuses_to_overwrite_and_unknown_formats(trained, tmp_path: Path) -> None:
    settings, registry = trained
    taken = tmp_path / "taken.gguf"
    taken.write_text("mine")
    with pytest.raises(ConfigError, match="already exists"):
        export(settings, registry, "facts", taken, "gguf")
    assert taken.read_text() == "mine"
    with pytest.raises(ConfigError, match="Unknown export format"):
        export(settings, registry, "facts", tmp_path / "x", "onnx")
    with pytest.raises(ConfigError, match="Unknown quantisation"):
        export(settings, registry, "facts", tmp_path / "x.gguf", "gguf", "q3")


def test_the_cli_exports_a_hugging_face_folder_with_merged_as_its_alias(trained, tmp_path: Path) -> None:
    settings, _ = trained
    assistant = str(Path(sys.executable).with_name("assistant"))
    env = {**os.environ, "ASSISTANT_HOME": str(settings.home)}
    done = subprocess.run([assistant, "finetune", "export", "facts", "--merged", str(tmp_path / "hf")],
                          capture_output=True, text=True, timeout=HANG_GUARD_S, env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "hf" / "config.json").is_file() and list((tmp_path / "hf").glob("*.safetensors"))
    merged = load_local(Settings(home=settings.home, max_tokens=32), model=str(tmp_path / "hf"))
    assert "ZEBRA-4471" in merged.generate(plain_chat(QUESTIONS[0])).text
