"""The trainer's shared-prefix forward pass computes what one plain pass computes: hidden states and LoRA gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from assistant.finetune.prefix import decode, shared_prefix

PREFIX = list(range(100, 130))  # 30 tokens every row starts with, as every example starts with the system prompt


def padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows))
    ids = torch.tensor([row + [0] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    return ids, mask


def test_the_shared_prefix_ends_at_the_first_difference_or_padding() -> None:
    assert shared_prefix(*padded([PREFIX + [1, 2], PREFIX + [1, 3], PREFIX + [1]])) == 31
    assert shared_prefix(*padded([PREFIX, PREFIX])) == 29  # each row keeps a position of its own
    assert shared_prefix(*padded([[5, *PREFIX], PREFIX])) == 0


@pytest.mark.integration
def test_decoding_the_prefix_once_gives_the_same_hidden_states_and_gradients(hf_model_folder: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(hf_model_folder, dtype=torch.float32),
                           LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.0,
                                      target_modules=["q_proj", "v_proj"]))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # B starts at zero, which would hide a wrong gradient through the adapter
            parameter.data.normal_(0, 0.02)
    decoder = model.get_base_model().get_decoder()
    ids, mask = padded([PREFIX + [200 + i for i in range(n)] for n in (12, 5, 9)])
    real = mask.bool()

    def hidden_and_gradients(forward) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        hidden = forward(decoder, ids, mask)[real]
        (hidden.float() ** 2).mean().backward()
        return hidden.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    plain, plain_grads = hidden_and_gradients(
        lambda d, i, m: d(input_ids=i, attention_mask=m, use_cache=False).last_hidden_state)
    shared, shared_grads = hidden_and_gradients(decode)
    assert torch.allclose(shared, plain, atol=1e-4, rtol=1e-4)
    assert len(plain_grads) == 120 and all(g.abs().sum() > 0 for g in plain_grads)  # 30 layers × (q, v) × (A, B)
    for ours, theirs in zip(shared_grads, plain_grads):
        assert torch.allclose(ours, theirs, atol=1e-6, rtol=1e-3)
