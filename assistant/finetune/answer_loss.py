"""Cross-entropy over a 49k-token vocabulary without the full logits matrix: the output layer and the loss, fused
and taken a block of positions at a time (as Liger's fused linear cross-entropy does on GPUs).

The plain way writes logits for every answer position (600 positions × 49,152 × 4 bytes = 118 MB a batch), then
log-softmax forward and backward pass over that matrix again and again: about a tenth of a CPU training step, all of
it memory traffic. Here each block's logits are made, turned into the loss and into the gradient of the hidden
states (softmax − one-hot, times the output weights) while they are still warm, and dropped; backward only scales
the saved gradient. Same sums as `cross_entropy(output_layer(hidden), labels, reduction="sum")`.
"""

from __future__ import annotations

import torch

BLOCK = 256  # positions per block: logits of 50 MB, and the output weights read only a few times a batch


def answer_loss_sum(hidden: torch.Tensor, output_layer: torch.nn.Module, labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of `output_layer(hidden)` (hidden: positions × width) against `labels`."""
    fusable = isinstance(output_layer, torch.nn.Linear) and output_layer.bias is None
    if not fusable or output_layer.weight.requires_grad:  # an output layer that trains, or is not a plain matrix
        return torch.nn.functional.cross_entropy(output_layer(hidden).float(), labels, reduction="sum")
    weight = output_layer.weight
    kind = hidden.device.type
    if torch.is_autocast_enabled(kind):  # cast once, not once per matmul as autocast would
        weight = weight.to(torch.get_autocast_dtype(kind))
    if not (torch.is_grad_enabled() and hidden.requires_grad):  # validation: the loss alone
        return _blocks(hidden, weight, labels, None)
    return _Fused.apply(hidden, weight, labels)


def _blocks(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, grad: torch.Tensor | None):
    """The summed loss; with `grad`, also fills it with the loss's gradient with respect to `hidden`."""
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    for start in range(0, hidden.shape[0], BLOCK):
        target = labels[start:start + BLOCK]
        logits = torch.nn.functional.linear(hidden[start:start + BLOCK], weight).float()
        normaliser = torch.logsumexp(logits, dim=-1)
        rows = torch.arange(len(target), device=hidden.device)
        total += (normaliser - logits[rows, target]).sum()
        if grad is not None:
            probabilities = logits.sub_(normaliser[:, None]).exp_()
            probabilities[rows, target] -= 1.0  # d loss / d logits
            grad[start:start + BLOCK] = torch.matmul(probabilities, weight).to(grad.dtype)
    return total


class _Fused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        grad = torch.empty_like(hidden)
        total = _blocks(hidden, weight, labels, grad)
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx, upstream: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return grad * upstream.to(grad.dtype), None, None
