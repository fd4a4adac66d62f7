"""Training on an int8 copy of the frozen base, for CPUs without native bf16 (AVX2 laptops and servers).

LoRA trains a few small matrices beside a frozen base, so the base's matrix multiplies — nearly all of a step's time
— need not be fp32: as QLoRA trains on a 4-bit base, the base's linear layers here multiply in int8 (oneDNN's
s8×s8→s32 GEMM, about twice fp32's rate on AVX2), forward and backward, while the adapter, norms, attention, the
loss and the optimizer stay fp32. Weights are quantised once per output channel; activations and gradients per row
(token) as they come, symmetric, to ±127, after smoothing (below). Validation, and everything outside training, use
the fp32 weights, so reported losses are fp32's.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable

import torch


@functools.cache
def available() -> bool:
    """Whether this torch build multiplies int8 on this CPU (`torch._int_mm`)."""
    try:
        ones = torch.ones((32, 32), dtype=torch.int8)
        return bool(torch._int_mm(ones, ones)[0, 0] == 32)
    except (RuntimeError, NotImplementedError, AttributeError):
        return False


def quantise_base(decoder: torch.nn.Module, calibrate: Callable[[], None]) -> int:
    """Give every frozen linear layer of the decoder (the base's projections, not LoRA's) an int8 training path;
    returns how many layers got one. `calibrate()` runs the decoder over a few training examples: each layer's
    largest input per channel sets its smoothing (SmoothQuant, alpha 0.5). A few channels of a language model's
    activations are far larger than the rest, and a row's one int8 scale would crush the others: dividing each input
    channel by sqrt(its peak / its weights' peak), and multiplying the weights' columns by the same, evens both out
    with the product unchanged (the bundled model's loss: 3 % off without it, 0.3 % with it)."""
    layers = [m for m in decoder.modules() if isinstance(m, torch.nn.Linear) and not m.weight.requires_grad]
    peaks: dict[torch.nn.Module, torch.Tensor] = {}

    def record(module: torch.nn.Module, args: tuple) -> None:
        seen = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(dim=0).float()
        peaks[module] = torch.maximum(peaks[module], seen) if module in peaks else seen

    hooks = [layer.register_forward_pre_hook(record) for layer in layers]
    try:
        with torch.no_grad():
            calibrate()
    finally:
        for hook in hooks:
            hook.remove()
    for layer in layers:
        weight = layer.weight.detach().float()
        peak = peaks.get(layer, torch.ones(weight.shape[1], device=weight.device))
        smooth = (peak.clamp(min=1e-5) / weight.abs().amax(dim=0).clamp(min=1e-5)).sqrt()
        smoothed = weight * smooth
        scale = smoothed.abs().amax(dim=1).clamp(min=1e-12) / 127
        layer.int8_weight = torch.round(smoothed / scale[:, None]).to(torch.int8)  # (out, in): backward's
        layer.int8_weight_t = layer.int8_weight.t().contiguous()  # (in, out): forward's
        layer.int8_scale, layer.int8_smooth = scale, smooth
        layer.forward = types.MethodType(_forward, layer)
    return len(layers)


def _forward(self: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    if not (self.training and torch.is_grad_enabled()):
        return torch.nn.functional.linear(x, self.weight, self.bias)
    y = _Int8Linear.apply(x, self.int8_weight, self.int8_weight_t, self.int8_scale, self.int8_smooth)
    return y if self.bias is None else y + self.bias


def _rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row, and each row's scale (as a column)."""
    scale = x.abs().amax(dim=1, keepdim=True).clamp_(min=1e-12) / 127
    return torch.round(x / scale).to(torch.int8).contiguous(), scale


class _Int8Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, weight_t: torch.Tensor, scale: torch.Tensor,
                smooth: torch.Tensor) -> torch.Tensor:
        quantised, row_scale = _rows(x.reshape(-1, x.shape[-1]).float() / smooth)
        ctx.save_for_backward(weight, scale, smooth)
        ctx.shape, ctx.dtype = x.shape, x.dtype
        y = torch._int_mm(quantised, weight_t).float().mul_(row_scale).mul_(scale)
        return y.reshape(*x.shape[:-1], -1).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        weight, scale, smooth = ctx.saved_tensors
        # y = (x / smooth) · (scale ⊙ W_int8)ᵀ, so d x = ((d y ⊙ scale) · W_int8) / smooth.
        quantised, row_scale = _rows(grad.reshape(-1, grad.shape[-1]).float() * scale)
        dx = torch._int_mm(quantised, weight).float().mul_(row_scale).div_(smooth)
        return dx.reshape(ctx.shape).to(ctx.dtype), None, None, None, None
