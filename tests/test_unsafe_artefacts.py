"""Model files from elsewhere are code and data from whoever made them (reliability claim 9): pickled weights and
checkpoints, a chat template that reaches out of Jinja's sandbox, metadata files of absurd size — each is refused
with a message that says why, and a planted payload never runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from assistant import bundled
from assistant.config import Settings
from assistant.errors import AssistantError, ModelUnavailable
from assistant.finetune.checkpoint import restore
from assistant.models.local import load_local
from tests.limits import HANG_GUARD_S

ASSISTANT = str(Path(sys.executable).with_name("assistant"))
NEW_METADATA = Path(__import__("gguf").__file__).parent / "scripts" / "gguf_new_metadata.py"


class Payload:
    """Unpickling this runs a command: what a hostile pickle does."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):
        return os.system, (f"touch {self.canary}",)


def hostile_template(canary: Path) -> str:
    return ("{{ cycler.__init__.__globals__.os.popen('touch " + str(canary) + "').read() }}"
            "{% for message in messages %}{{ message['content'] }}{% endfor %}")


def test_a_model_folder_with_pickled_weights_is_refused_unopened(tmp_path: Path, model_home: Path) -> None:
    folder, canary = tmp_path / "model", tmp_path / "ran"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    torch.save({"weight": Payload(canary)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelUnavailable, match="pickled pytorch_model.bin, which can run arbitrary code"):
        load_local(Settings(home=model_home), model=str(folder))
    assert not canary.exists()


def test_a_pickled_checkpoint_is_refused_with_what_to_do(tmp_path: Path) -> None:
    canary = tmp_path / "ran"
    torch.save({"optimizer": Payload(canary)}, tmp_path / "trainer.pt")
    with pytest.raises(AssistantError, match="a pickle that could run code.*Train without --resume"):
        restore({"_folder": str(tmp_path)}, optimizer=None, scheduler=None)
    assert not canary.exists()


def test_absurd_metadata_files_are_refused_before_parsing(tmp_path: Path, model_home: Path,
                                                          hf_model_folder: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for item in hf_model_folder.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "tokenizer.json").unlink()
    with (folder / "tokenizer.json").open("wb") as huge:
        huge.truncate(300 * 2**20)  # sparse: 300 MiB of nothing, no disk used
    with pytest.raises(ModelUnavailable, match="tokenizer.json is 300 MiB, not a real tokenizer.json"):
        load_local(Settings(home=model_home), model=str(folder))


def test_a_gguf_chat_template_reaching_out_of_the_sandbox_is_refused(tmp_path: Path) -> None:
    canary, hostile = tmp_path / "ran", tmp_path / "hostile.gguf"
    subprocess.run([sys.executable, str(NEW_METADATA), "--chat-template", hostile_template(canary), "--force",
                    str(bundled.GENERATOR.path()), str(hostile)], check=True, capture_output=True,
                   timeout=HANG_GUARD_S)
    result = subprocess.run([ASSISTANT, "ask", "hi", "--strategy", "plain", "--model", str(hostile)],
                            capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "The chat template of hostile is refused (SecurityError" in result.stderr
    assert not canary.exists()


def test_a_tokenizer_chat_template_reaching_out_of_the_sandbox_is_refused(tmp_path: Path, model_home: Path,
                                                                          hf_model_folder: Path) -> None:
    folder, canary = tmp_path / "model", tmp_path / "ran"
    shutil.copytree(hf_model_folder, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    for weights in hf_model_folder.glob("*.safetensors"):
        (folder / weights.name).symlink_to(weights)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": hostile_template(canary)}))
    (folder / "chat_template.jinja").unlink(missing_ok=True)  # newer transformers keep the template beside
    with pytest.raises(ModelUnavailable, match=r"The chat template of model is refused \(SecurityError"):
        load_local(Settings(home=model_home), model=str(folder))
    assert not canary.exists()
