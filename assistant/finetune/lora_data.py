"""Examples → token ids and labels for causal-LM training, and batches that waste little compute on padding.

Each example is rendered exactly as the plain strategy will later prompt the model (same system prompt, same chat
template), so the adapter learns the situation it is used in. Loss falls only on the answer: prompt tokens get the
label -100, which the loss ignores.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from assistant.examples import Example
from assistant.finetune.datasets import to_chat

IGNORE = -100  # label value the cross-entropy loss skips
MEGABATCH = 32  # batches per length-sorted group: short batches without losing shuffling


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def chat_messages(example: Example) -> list[dict]:
    return to_chat(example)["messages"]


def encode(tokenizer, example: Example, max_length: int) -> Encoded:
    messages = chat_messages(example)
    full = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                           return_dict=False)
    if full[:len(prompt)] != prompt:  # a template that renders the prompt differently once answered
        raise ValueError("the chat template does not render the prompt as a prefix of the full conversation")
    labels = [IGNORE] * len(prompt) + full[len(prompt):]
    return Encoded(full[:max_length], labels[:max_length])


def token_counter(tokenizer) -> Callable[[Example], int]:
    return lambda example: len(tokenizer.apply_chat_template(chat_messages(example), tokenize=True,
                                                             return_dict=False))


def batches(items: Sequence[Encoded], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices per batch for one epoch: shuffled, then sorted by length inside groups of MEGABATCH batches (the
    trick of HF's group_by_length), then the batches shuffled again. Deterministic in (seed, epoch), so a resumed
    run sees the same batches in the same order."""
    rng = random.Random(seed * 10_007 + epoch)
    order = list(range(len(items)))
    rng.shuffle(order)
    group = batch_size * MEGABATCH
    result: list[list[int]] = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start:start + group], key=lambda i: len(items[i].input_ids), reverse=True)
        result += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(result)
    return result


def collate(items: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest in this batch only (not to max_length)."""
    width = max(len(item.input_ids) for item in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item.input_ids)
        ids[row, :n] = torch.tensor(item.input_ids)
        labels[row, :n] = torch.tensor(item.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def iterate(items: Sequence[Encoded], indices: Sequence[list[int]], pad_id: int) -> Iterator[dict[str, torch.Tensor]]:
    for batch in indices:
        yield collate([items[i] for i in batch], pad_id)
