"""Data-parallel LoRA training with torch.distributed: N processes, one per GPU or each a share of the CPU cores.

Every process holds the whole model and the whole (small) data set and trains a disjoint share of each step's
examples; the gradients are summed across processes before the optimizer step. Each share's loss is weighted by
its part of the step's answer tokens, so the sum is exactly the gradient one process computes on the global batch:
every process takes that same step, and a run gives the same adapter with any N (within float rounding). Only rank 0
writes (history, checkpoints, the adapter, the registry), so a checkpoint resumes with any N.

Gradients are reduced here, not by DistributedDataParallel: the loss runs on the base model's decoder and output
layer directly (lora.py `_loss`, which skips the output layer where no label is trained), a path DDP's forward
hooks do not see; and a LoRA adapter's gradients are a few megabytes at most, one flat all-reduce per step.

gloo on the CPU, nccl on CUDA GPUs (rank r on its machine's cuda:r). `--processes N` spawns N processes on this
machine; `torchrun` starts the same command N times, on one machine or several, and each joins the group its
environment describes. Across machines every process reads the data, the base model and, to resume, the
checkpoint from the same paths (a shared data home), and rank 0 writes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from assistant.cpu import usable_cores
from assistant.errors import AssistantError

MAX_PROCESSES = 64
T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (rank 0 of 1 when training alone)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, examples: list[int]) -> list[int]:
        return examples[self.rank::self.size]

    def sum_gradients(self, parameters: Iterable[torch.Tensor], extra: float = 0.0) -> float:
        """Every parameter's gradient summed over the processes, in place; returns `extra` summed too (the loss)."""
        if self.size == 1:
            return extra
        parameters = list(parameters)
        for p in parameters:
            if p.grad is None:  # a process whose share of a step was empty
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in parameters] + [torch.tensor([extra], device=parameters[0].device,
                                                                                  dtype=parameters[0].grad.dtype)])
        dist.all_reduce(flat)
        offset = 0
        for p in parameters:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
            offset += p.numel()
        return float(flat[-1])

    def sum(self, *values: float, device: str = "cpu") -> list[float]:
        if self.size == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def decided_by_main(self, flag: bool, device: str = "cpu") -> bool:
        """Rank 0's answer on every process (a stop request only rank 0 looks for)."""
        if self.size == 1:
            return flag
        tensor = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.broadcast(tensor, 0)
        return bool(tensor.item())

    def from_main(self, compute: Callable[[], T]) -> T:
        """compute() run by rank 0 alone, its result (or its error) on every process."""
        result: list[object] = [None]
        if self.main:
            try:
                result[0] = compute()
            except AssistantError as exc:
                result[0] = exc
        dist.broadcast_object_list(result, 0)
        if isinstance(result[0], AssistantError):
            raise result[0]
        return result[0]  # type: ignore[return-value]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


ALONE = World()


def from_torchrun() -> World | None:
    """The world torchrun (or any launcher with its environment) started this process in; None when not."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return None
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")),
                  int(os.environ.get("LOCAL_WORLD_SIZE", str(size))))
    if not dist.is_initialized():
        dist.init_process_group(backend(), rank=world.rank, world_size=world.size)
    return world


def backend() -> str:
    return "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


def device_for(world: World, device: str) -> str:
    """Rank r's device: its own GPU when training on CUDA, else the one asked for."""
    if world.size > 1 and device.startswith("cuda"):
        return f"cuda:{world.local_rank}"
    return device


def threads_for(world: World) -> int:
    """CPU threads each process may use: the cores shared out, so N processes do not fight over them."""
    return max(1, usable_cores() // world.local_size)


def check_processes(processes: int, examples_per_step: int, device: str) -> None:
    if not 1 <= processes <= MAX_PROCESSES:
        raise AssistantError(f"--processes must be between 1 and {MAX_PROCESSES} (got {processes}).")
    if processes > examples_per_step:
        raise AssistantError(f"--processes {processes} would leave processes idle: each step has {examples_per_step} "
                             "example(s) to share (batch size × gradient accumulation); raise those or use fewer.")
    if device.startswith("cuda") and processes > torch.cuda.device_count():
        raise AssistantError(f"--processes {processes} on CUDA needs a GPU each; this machine has "
                             f"{torch.cuda.device_count()}.")


def spawn(processes: int, target: Callable[..., object], *args: object) -> None:
    """target(world, *args) in `processes` new processes on this machine, joined as one group; returns when all
    have finished. A process that fails stops the others; its error is raised here."""
    import torch.multiprocessing as mp

    with socket.socket() as sock:  # a free loopback port for the group to meet on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = mp.start_processes(_run, args=(processes, port, target, args), nprocs=processes, join=False,
                                 start_method="spawn")
    interrupted = False
    while True:
        try:
            if context.join():
                return
        except KeyboardInterrupt:  # Ctrl-C reached the processes too: rank 0 checkpoints; wait for it
            interrupted = True
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
            if interrupted:  # a process left a collective its peer had already left: the run was stopped
                return
            if isinstance(exc, mp.ProcessRaisedException):
                raise AssistantError(f"A training process failed: {str(exc).strip().splitlines()[-1]}") from None
            raise AssistantError(f"A training process stopped unexpectedly ({exc}); continue from the last "
                                 "checkpoint with --resume.") from None


def _run(index: int, size: int, port: int, target: Callable[..., object], args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(backend(), rank=index, world_size=size)
    try:
        target(World(index, size, index, size), *args)
    finally:
        dist.destroy_process_group()
