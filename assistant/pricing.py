"""OpenAI list prices, in one place: the fine-tuning estimate and the comparison's cost column both read them.

US dollars per million tokens, from openai.com/api/pricing as of 2026-11. They change: every figure computed from
this table is labelled an estimate. Models missing here get no cost rather than a wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.errors import ConfigError


@dataclass(frozen=True)
class Price:
    input: float  # per 1M prompt tokens
    output: float  # per 1M completion tokens
    training: float | None = None  # per 1M trained tokens (tokens × epochs); None: not fine-tunable
    tuned_input: float | None = None  # a fine-tuned model of this base, per 1M tokens
    tuned_output: float | None = None
    training_context: int = 65_536  # longest example the fine-tuning API accepts, in tokens


PRICES: dict[str, Price] = {
    "gpt-4o-mini-2024-07-18": Price(0.15, 0.60, 3.00, 0.30, 1.20),
    "gpt-4o-2024-08-06": Price(2.50, 10.00, 25.00, 3.75, 15.00),
    "gpt-4.1-2025-04-14": Price(2.00, 8.00, 25.00, 3.00, 12.00),
    "gpt-4.1-mini-2025-04-14": Price(0.40, 1.60, 5.00, 0.80, 3.20),
    "gpt-4.1-nano-2025-04-14": Price(0.10, 0.40, 1.50, 0.20, 0.80),
    "gpt-3.5-turbo-0125": Price(0.50, 1.50, 8.00, 3.00, 6.00, training_context=16_385),
}
_ALIASES = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06", "gpt-4.1": "gpt-4.1-2025-04-14",
            "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14", "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
            "gpt-3.5-turbo": "gpt-3.5-turbo-0125"}


def price_of(model: str) -> Price | None:
    """The price of a base model or of a fine-tuned one (`ft:BASE:org:suffix:id`); None when unknown."""
    tuned = model.startswith("ft:")
    base = model.split(":")[1] if tuned else model
    price = PRICES.get(_ALIASES.get(base, base))
    if price is None or not tuned:
        return price
    return Price(price.tuned_input or price.input, price.tuned_output or price.output)


def answer_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    price = price_of(model)
    if price is None:
        return None
    return (prompt_tokens * price.input + completion_tokens * price.output) / 1e6


def training_price(model: str) -> Price:
    price = price_of(model)
    if price is None or price.training is None:
        raise ConfigError(f"{model!r} is not a model this tool knows how to fine-tune on OpenAI; known: "
                          f"{', '.join(p for p, v in PRICES.items() if v.training)}.")
    return price
