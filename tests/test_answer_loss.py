"""The trainer's fused output-layer + cross-entropy gives the loss and gradients of the plain two steps."""

from __future__ import annotations

import pytest
import torch

from assistant.finetune import answer_loss
from assistant.finetune.answer_loss import answer_loss_sum


@pytest.fixture
def case(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(answer_loss, "BLOCK", 7)  # several blocks, the last one short
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 300, bias=False).requires_grad_(False)
    hidden = torch.randn(30, 16, requires_grad=True)
    return layer, hidden, torch.randint(0, 300, (30,))


def plain(layer, hidden, labels):
    return torch.nn.functional.cross_entropy(layer(hidden).float(), labels, reduction="sum")


def fused(layer, hidden, labels):
    return answer_loss_sum(hidden, layer, labels)


def loss_and_grad(loss_fn, layer, hidden, labels, autocast: bool = False):
    hidden.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = loss_fn(layer, hidden, labels)
    (loss * 0.5).backward()  # a scaled loss, as the trainer weights each batch
    return loss.detach(), hidden.grad.clone()


def test_fp32_loss_and_gradient_equal_the_plain_ones(case) -> None:
    ours, ours_grad = loss_and_grad(fused, *case)
    theirs, theirs_grad = loss_and_grad(plain, *case)
    assert torch.allclose(ours, theirs, rtol=1e-5)
    assert torch.allclose(ours_grad, theirs_grad, atol=1e-6, rtol=1e-4)


def test_under_bf16_autocast_they_agree_to_bf16_precision(case) -> None:
    ours, ours_grad = loss_and_grad(fused, *case, autocast=True)
    theirs, theirs_grad = loss_and_grad(plain, *case, autocast=True)
    assert torch.allclose(ours, theirs, rtol=1e-3)
    assert torch.allclose(ours_grad, theirs_grad, atol=2e-3, rtol=2e-2)


def test_without_gradients_only_the_loss_is_computed(case) -> None:
    layer, hidden, labels = case
    with torch.no_grad():
        assert torch.allclose(answer_loss_sum(hidden, layer, labels), plain(layer, hidden, labels), rtol=1e-5)


def test_an_output_layer_with_a_bias_takes_the_plain_path(case) -> None:
    _, hidden, labels = case
    layer = torch.nn.Linear(16, 300).requires_grad_(False)
    assert torch.allclose(answer_loss_sum(hidden, layer, labels), plain(layer, hidden, labels))
