"""The decoder's forward pass over a training batch, with the prefix every row shares computed once.

Every training example begins with the same system prompt and chat-template header (a quarter of a FAQ example's
tokens). Under causal attention those positions see only each other, so they compute the same keys, values and
hidden states in every row: computing them in one row and letting the other rows attend to its keys and values is the
same arithmetic, minus (batch − 1) copies of the prefix — forward and backward, since the gradients of the rows meet
in the one copy. (LoRA dropout then draws one mask for the shared positions instead of one per row: the same
distribution.)
"""

from __future__ import annotations

import torch

MIN_SHARED = 8  # fewer shared positions than this save less than the second call costs


def shared_prefix(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """How many leading positions hold the same real token in every row, leaving at least one position per row."""
    same = ((input_ids == input_ids[:1]) & (attention_mask == 1)).all(dim=0)
    return min(int(same.int().cumprod(0).sum()), input_ids.shape[1] - 1)


def decode(decoder, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The last hidden states, (batch, width, hidden), as `decoder(input_ids, attention_mask)` computes them."""
    rows = input_ids.shape[0]
    shared = shared_prefix(input_ids, attention_mask) if rows > 1 else 0
    if shared < MIN_SHARED:
        return decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    head = decoder(input_ids=input_ids[:1, :shared], use_cache=True)
    cache = head.past_key_values
    cache.batch_repeat_interleave(rows)  # the other rows attend to the one row's keys and values
    # Right padding only, so positions continue from the prefix as in one pass; the mask covers prefix and rest.
    rest = decoder(input_ids=input_ids[:, shared:], attention_mask=attention_mask, past_key_values=cache,
                   use_cache=True).last_hidden_state
    return torch.cat([head.last_hidden_state.expand(rows, -1, -1), rest], dim=1)
