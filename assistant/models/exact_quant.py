"""Lossless packing of GGUF-derived weights for the AVX-512 kernels in kernels/q4_cpu.cpp.

The bundled model was dequantised from Q4_1 (decoder linears) and Q8_0 (embedding = tied lm_head), so its fp32
weights are exactly `d*q + m` per block of 32. We recover (q, d, m), check the reconstruction is bit-exact, and
swap the Linear layers for modules that multiply from the packed form. Any weight that is not exact (a merged LoRA
adapter, another model) makes `pack_exact` refuse, and the caller keeps fp32.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
from pathlib import Path

import torch

from assistant.cpu import cpu_flags

KERNEL_SOURCE = Path(__file__).with_name("kernels") / "q4_cpu.cpp"
DECODER_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_ops = None


class NotExact(ValueError):
    """The weights are not exactly representable: packing them would change the model's output."""


def kernels_supported() -> str | None:
    """None when the kernels can be built here, else the reason they cannot."""
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return f"needs an x86-64 CPU (this is {platform.machine()})"
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return "needs a CPU with AVX-512"
    if not (shutil.which("c++") or shutil.which("g++")):
        return "needs a C++ compiler (apt-get install g++)"
    return None


def load_kernels(build_root: Path):
    """Compile once per machine (~30 s) into build_root, then load in a second; returns torch.ops.ragtune_qmm."""
    global _ops
    if _ops is None:
        from torch.utils.cpp_extension import load

        source = KERNEL_SOURCE.read_bytes()
        # No -fopenmp: the kernels bring their own thread pool (see the source for why not OpenMP).
        flags = ["-O3", "-march=native", "-pthread"]
        cpu = " ".join(sorted(cpu_flags()))
        # -march=native binaries are only valid on this kind of CPU: key the build on source, flags, torch, CPU.
        key = hashlib.sha256(source + " ".join(flags).encode() + torch.__version__.encode() + cpu.encode())
        build_dir = build_root / f"q4_cpu-{key.hexdigest()[:16]}"
        build_dir.mkdir(parents=True, exist_ok=True)
        # ninja ships in the venv (the `ninja` package); make sure the build finds it without an activated venv.
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        load(name="ragtune_q4_cpu", sources=[str(KERNEL_SOURCE)], build_directory=str(build_dir),
             extra_cflags=flags, is_python_module=False, verbose=False)
        _ops = torch.ops.ragtune_qmm
    return _ops


def _blocks(weight: torch.Tensor) -> torch.Tensor:
    rows, cols = weight.shape
    if cols % 32:
        raise NotExact(f"row length {cols} is not a multiple of the 32-value block")
    return weight.detach().float().view(rows, cols // 32, 32)


def pack_q4_1(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q nibbles, d, m) with d*q + m == weight exactly, or NotExact."""
    blocks = _blocks(weight)
    low = blocks.amin(-1, keepdim=True)
    scale = ((blocks.amax(-1, keepdim=True) - low) / 15).half().float()  # GGUF stores d and m as fp16
    q = ((blocks - low) / torch.where(scale > 0, scale, torch.ones_like(scale))).round().clamp(0, 15)
    if not torch.equal(torch.addcmul(low, q, scale), blocks):
        raise NotExact("weights are not Q4_1 values")
    q = q.to(torch.uint8)
    nibbles = (q[..., :16] | (q[..., 16:] << 4)).reshape(weight.shape[0], -1).contiguous()
    return nibbles, scale.squeeze(-1).contiguous(), low.squeeze(-1).contiguous()


def pack_q8_0(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 q, d) with d*q == weight exactly, or NotExact."""
    blocks = _blocks(weight)
    scale = (blocks.abs().amax(-1, keepdim=True) / 127).half().float()
    q = (blocks / torch.where(scale > 0, scale, torch.ones_like(scale))).round().clamp(-128, 127)
    if not torch.equal(q * scale, blocks):
        raise NotExact("weights are not Q8_0 values")
    return q.to(torch.int8).view(weight.shape).contiguous(), scale.squeeze(-1).contiguous()


class Q41Linear(torch.nn.Module):
    def __init__(self, nibbles: torch.Tensor, scale: torch.Tensor, low: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("nibbles", nibbles)
        self.register_buffer("scale", scale)
        self.register_buffer("low", low)
        self.out_features, self.in_features = nibbles.shape[0], nibbles.shape[1] * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).float()
        return _ops.q4_1_mm(flat, self.nibbles, self.scale, self.low).view(*x.shape[:-1], self.out_features)


class Q80Linear(torch.nn.Module):
    def __init__(self, q: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("q", q)
        self.register_buffer("scale", scale)
        self.out_features, self.in_features = q.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).float()
        return _ops.q8_0_mm(flat, self.q, self.scale).view(*x.shape[:-1], self.out_features)


def torch_threads_here(threads: int) -> int:
    """Run torch's ops in the calling thread on `threads` threads (other threads keep theirs); the previous count."""
    return _ops.torch_threads_here(threads)


def is_packed(model) -> bool:
    return isinstance(getattr(model, "lm_head", None), Q80Linear)


def _decoder_linears(model) -> list[tuple[str, torch.nn.Linear]]:
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in DECODER_LINEARS]


def _pack(model) -> dict[str, torch.Tensor]:
    """Every packed tensor by name, or NotExact. The first layer is tried alone first: most models that are not
    GGUF-derived (or carry a merged adapter) fail there in milliseconds."""
    linears = _decoder_linears(model)
    if not linears or not model.config.tie_word_embeddings:
        raise NotExact("only Llama-style models with a tied output layer are packed")
    if model.dtype != torch.float32 or any(module.bias is not None for _, module in linears):
        raise NotExact("only fp32 linear layers without bias are packed")
    packed: dict[str, torch.Tensor] = {}
    for name, module in linears:
        packed[f"{name}.nibbles"], packed[f"{name}.scale"], packed[f"{name}.low"] = pack_q4_1(module.weight)
    packed["lm_head.q"], packed["lm_head.scale"] = pack_q8_0(model.model.embed_tokens.weight)
    return packed


def pack_exact(model, build_root: Path, cache_file: Path):
    """Swap a fp32 model's linears for packed ones, all or nothing; raises NotExact with the model untouched.
    Packing checks every weight (seconds), so its result is cached in `cache_file` for the next load."""
    from safetensors.torch import load_file, save_file

    if cache_file.is_file():
        packed = load_file(cache_file)
    else:
        packed = _pack(model)
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        staging = cache_file.with_suffix(f".{os.getpid()}.tmp")
        save_file(packed, staging)
        os.replace(staging, cache_file)
    # The kernels' own thread pool follows torch's setting (all cores, or `threads` in the settings).
    load_kernels(build_root).set_threads(torch.get_num_threads())
    for name, _ in _decoder_linears(model):
        parent, _, attribute = name.rpartition(".")
        packed_linear = Q41Linear(packed[f"{name}.nibbles"], packed[f"{name}.scale"], packed[f"{name}.low"])
        setattr(model.get_submodule(parent), attribute, packed_linear)
    # The embedding stays fp32 (one row is read per token); only the tied output layer reads the packed copy.
    model.lm_head = Q80Linear(packed["lm_head.q"], packed["lm_head.scale"])
    return model
