"""Which device the local models run on: the `device` setting (auto, cpu, cuda, cuda:N, mps).

`auto` takes a CUDA GPU, then Apple's MPS, then the CPU. An explicit device that this machine lacks is an error
rather than a silent CPU run: whoever asked for a GPU wants to know it is not being used.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.errors import ConfigError


@dataclass(frozen=True)
class Device:
    name: str  # what torch calls it: cpu, cuda, cuda:1, mps
    why: str  # for `assistant doctor`

    @property
    def kind(self) -> str:
        return self.name.split(":")[0]

    @property
    def is_gpu(self) -> bool:
        return self.kind != "cpu"


def resolve_device(requested: str) -> Device:
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if requested == "auto":
        if cuda:
            return Device("cuda", f"auto: CUDA GPU {torch.cuda.get_device_name(0)}")
        if mps:
            return Device("mps", "auto: Apple GPU (MPS)")
        return Device("cpu", "auto: no CUDA or MPS GPU found")
    if requested == "cpu":
        return Device("cpu", "set to cpu")
    if requested.startswith("cuda"):
        if not cuda:
            raise ConfigError(f"device={requested} but no CUDA GPU is usable here (torch {torch.__version__} sees "
                              "none); set ASSISTANT_DEVICE=auto or cpu.")
        index = int(requested.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device={requested} but this machine has {torch.cuda.device_count()} CUDA GPU(s).")
        return Device(requested, f"set to {requested}: {torch.cuda.get_device_name(index)}")
    if requested == "mps":
        if not mps:
            raise ConfigError("device=mps but Apple's MPS is not available here; set ASSISTANT_DEVICE=auto or cpu.")
        return Device("mps", "set to mps")
    raise ConfigError(f"Unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps.")
