"""Reliability claim 9 (issue 16): hostile model artefacts — pickled adapters, model weights and checkpoints with a
payload, chat templates that reach out of Jinja's sandbox (in a GGUF and in a tokenizer), metadata files of absurd
size, a truncated GGUF — are refused by the real CLI in one line that says why, and no payload ever runs.

    .venv/bin/python benchmarks/reliability/unsafe_artefacts.py

Each payload would create a canary file; the check is that none exists afterwards. The pickled checkpoint is planted
in a real interrupted run (SIGKILLed after its first checkpoint) and met by `finetune train --resume`. Prints a
Markdown table for docs/RELIABILITY.md.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.reliability.kill_training import checkpoint_step, command  # noqa: E402
from tests.test_unsafe_artefacts import NEW_METADATA, Payload, hostile_template  # noqa: E402
from tests.trained import FACTS, write  # noqa: E402

ASSISTANT = str(Path(sys.executable).with_name("assistant"))
GUARD_S = 1800


def refused(args: list[str], env: dict[str, str], canary: Path) -> tuple[bool, str]:
    """(refused in one line without a traceback and the payload did not run, the message)."""
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=GUARD_S)
    message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"(exit {done.returncode}, silent)"
    clean = done.returncode != 0 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    return clean and not canary.exists(), message


def main() -> None:
    import torch

    from assistant import bundled, hf
    from assistant.config import Settings
    from assistant.models.local_weights import resolve_source, weights_folder

    hf.quiet()  # no dequantising progress bar in the table
    rows: list[tuple[str, str, bool, str]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="unsafe-artefacts-") as scratch:
        work = Path(scratch)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")},
               "ASSISTANT_HOME": str(work / "home"), "ASSISTANT_LOCAL_PRECISION": "fp32"}
        ask = [ASSISTANT, "ask", "hi", "--strategy", "plain"]
        canary = work / "payload-ran"
        hf_folder = weights_folder(resolve_source(None), Settings(home=work / "home").model_cache_dir)

        def model_folder(name: str) -> Path:
            """The bundled model as a Hugging Face folder, weights linked, to plant things in."""
            folder = work / name
            shutil.copytree(hf_folder, folder, ignore=shutil.ignore_patterns("*.safetensors"))
            for weights in hf_folder.glob("*.safetensors"):
                (folder / weights.name).symlink_to(weights)
            return folder

        adapter = work / "pickled-adapter"
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
        torch.save({"weight": Payload(canary)}, adapter / "adapter_model.bin")
        rows.append(("LoRA adapter as a pickled `adapter_model.bin`", "`ask` with ASSISTANT_ADAPTER",
                     *refused(ask, {**env, "ASSISTANT_ADAPTER": str(adapter)}, canary)))

        pickled_model = work / "pickled-model"
        pickled_model.mkdir()
        (pickled_model / "config.json").write_text(json.dumps({"model_type": "llama"}))
        torch.save({"weight": Payload(canary)}, pickled_model / "pytorch_model.bin")
        rows.append(("model folder with pickled `pytorch_model.bin`", "`ask --model FOLDER`",
                     *refused([*ask, "--model", str(pickled_model)], env, canary)))

        hostile_gguf = work / "hostile.gguf"
        subprocess.run([sys.executable, str(NEW_METADATA), "--chat-template", hostile_template(canary), "--force",
                        str(bundled.GENERATOR.path()), str(hostile_gguf)], check=True, capture_output=True,
                       timeout=GUARD_S)
        rows.append(("GGUF whose chat template calls `os.popen` via `cycler.__init__.__globals__`",
                     "`ask --model FILE.gguf`", *refused([*ask, "--model", str(hostile_gguf)], env, canary)))

        template_folder = model_folder("hostile-template")
        config = json.loads((template_folder / "tokenizer_config.json").read_text())
        (template_folder / "tokenizer_config.json").write_text(
            json.dumps({**config, "chat_template": hostile_template(canary)}))
        (template_folder / "chat_template.jinja").unlink(missing_ok=True)
        rows.append(("tokenizer_config.json with the same template", "`ask --model FOLDER`",
                     *refused([*ask, "--model", str(template_folder)], env, canary)))

        huge_tokenizer = model_folder("huge-tokenizer")
        (huge_tokenizer / "tokenizer.json").unlink()
        with (huge_tokenizer / "tokenizer.json").open("wb") as huge:
            huge.truncate(2 * 2**30)  # sparse
        rows.append(("2 GiB `tokenizer.json`", "`ask --model FOLDER`",
                     *refused([*ask, "--model", str(huge_tokenizer)], env, canary)))

        truncated = work / "truncated.gguf"
        truncated.write_bytes(bundled.GENERATOR.path().read_bytes()[: 40 * 2**20])
        rows.append(("GGUF cut short at 40 MiB", "`ask --model FILE.gguf`",
                     *refused([*ask, "--model", str(truncated)], env, canary)))

        data = write(work / "facts.jsonl", FACTS)
        run_dir = work / "home" / "finetuned" / "planted" / "run"
        child = subprocess.Popen(command(data, "planted", resume=False), env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + GUARD_S
        while checkpoint_step(run_dir) == 0 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        child.send_signal(signal.SIGKILL)
        child.wait()
        checkpoint = run_dir / "checkpoint" / "trainer.pt"
        if checkpoint.is_file():
            torch.save({"optimizer": Payload(canary)}, checkpoint)
            rows.append(("training checkpoint `trainer.pt` replaced by a pickle payload", "`finetune train --resume`",
                         *refused(command(data, "planted", resume=True), env, canary)))
        else:
            rows.append(("training checkpoint `trainer.pt` replaced by a pickle payload", "`finetune train --resume`",
                         False, f"no checkpoint was written at {checkpoint}"))
    seconds = time.perf_counter() - started

    print(f"\n{datetime.date.today()}, unsafe_artefacts.py, {seconds:.0f} s\n")
    print("| artefact | met by | refused in one line, payload not run | message |")
    print("|---|---|---|---|")
    for artefact, by, ok, message in rows:
        print(f"| {artefact} | {by} | {'yes' if ok else '**no**'} | {message[:160].replace('|', '/')} |")
    if not all(ok for _, _, ok, _ in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
