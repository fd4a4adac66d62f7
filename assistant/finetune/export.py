"""`assistant finetune export`: a local fine-tuned model as files other servers load.

- `hf`: base + adapter merged into a Hugging Face folder (safetensors), for vLLM, TGI or transformers;
- `gguf`: one merged GGUF file (f16, q8_0 or q4_k_m), for llama.cpp, LM Studio or Ollama;
- `ollama`: a folder with that GGUF and a Modelfile carrying the chat template and the system prompt the model was
  trained with: `ollama create NAME -f Modelfile`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from assistant.config import Settings
from assistant.errors import AssistantError, ConfigError
from assistant.finetune.registry import ModelRecord, Registry
from assistant.prompts import SYSTEM_PROMPT

FORMATS = ("gguf", "ollama", "hf")


def export(settings: Settings, registry: Registry, name: str, out: Path, fmt: str = "hf",
           quant: str = "q8_0") -> Path:
    from assistant.finetune.gguf_merge import FILE_TYPES

    if fmt not in FORMATS:
        raise ConfigError(f"Unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    if quant not in FILE_TYPES:
        raise ConfigError(f"Unknown quantisation {quant!r}; choose one of: {', '.join(FILE_TYPES)}.")
    record = registry.get(name)
    if record.provider != "local" or not record.ready:
        raise AssistantError(f"Only a finished local model can be exported; {name!r} is {record.provider}, "
                             f"{record.status}.")
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists; choose a new {'file' if fmt == 'gguf' else 'folder'}.")
    match fmt:
        case "hf":
            return export_hf(settings, registry, record, out)
        case "gguf":
            return export_gguf(settings, registry, record, out, quant)
        case _:
            out.mkdir(parents=True, exist_ok=True)
            model = export_gguf(settings, registry, record, out / f"{name}.gguf", quant)
            (out / "Modelfile").write_text(modelfile(model))
            return out


def export_hf(settings: Settings, registry: Registry, record: ModelRecord, out: Path) -> Path:
    """Base + adapter merged into one Hugging Face folder (safetensors)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from assistant.models.local_weights import check_adapter, resolve_source, weights_folder

    folder = weights_folder(resolve_source(record.base_path), settings.model_cache_dir)
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(check_adapter(registry.adapter_dir(record.name)))).merge_and_unload()
    merged.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder).save_pretrained(out)
    return out


def export_gguf(settings: Settings, registry: Registry, record: ModelRecord, out: Path, quant: str) -> Path:
    """One merged GGUF file at `out`. A GGUF base keeps its own metadata (tokenizer, template); a Hugging Face base
    goes through llama.cpp's own converter."""
    from assistant.finetune import gguf_merge
    from assistant.models import llama_build
    from assistant.models.local_weights import resolve_source
    from assistant.models.lora_gguf import gguf_adapter

    source = resolve_source(record.base_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out.parent) as work:
        f16 = Path(work) / "merged-f16.gguf"
        if source.gguf_file is not None:
            lora = gguf_adapter(registry.adapter_dir(record.name), source, settings.model_cache_dir)
            gguf_merge.merge(source.gguf_file, lora, f16)
        else:
            merged = export_hf(settings, registry, record, Path(work) / "merged")
            script = llama_build.scripts_dir() / "convert_hf_to_gguf.py"
            done = subprocess.run([sys.executable, str(script), str(merged), "--outtype", "f16", "--outfile", str(f16)],
                                  capture_output=True, text=True)
            if done.returncode:
                raise AssistantError("llama.cpp's converter failed: "
                                     + (done.stderr.strip().splitlines() or ["no output"])[-1])
        partial = Path(work) / "out.gguf"
        if quant == "f16":
            shutil.move(f16, partial)
        else:
            gguf_merge.quantize(f16, partial, quant, settings.threads or os.cpu_count() or 1)
        os.replace(partial, out)  # the file appears whole or not at all
    return out


def modelfile(gguf_file: Path) -> str:
    """An Ollama Modelfile for the merged GGUF: its chat template in Ollama's (Go) template language where the
    family is known (else Ollama reads the template from the GGUF itself), and the system prompt of training."""
    from gguf import GGUFReader

    field = GGUFReader(str(gguf_file)).get_field("tokenizer.chat_template")
    jinja = field.contents() if field is not None else ""
    lines = [f"FROM ./{gguf_file.name}"]
    template, stops = _ollama_template(jinja)
    if template:
        lines.append(f'TEMPLATE """{template}"""')
    else:
        lines.append("# TEMPLATE: Ollama takes the chat template from the GGUF's metadata.")
    lines.append(f'SYSTEM """{SYSTEM_PROMPT}"""')
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    lines.append("PARAMETER temperature 0")
    return "\n".join(lines) + "\n"


# The chat formats of the families users fine-tune most, as Ollama writes them in its own library.
_CHATML = ("{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
           "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
           "<|im_start|>assistant\n")
_LLAMA3 = ("{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
           "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
           "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n")


def _ollama_template(jinja: str) -> tuple[str | None, list[str]]:
    if "<|im_start|>" in jinja:
        return _CHATML, ["<|im_start|>", "<|im_end|>"]
    if "<|start_header_id|>" in jinja:
        return _LLAMA3, ["<|start_header_id|>", "<|eot_id|>"]
    return None, []
