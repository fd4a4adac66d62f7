"""The same contract over every backend: fake, local (the real bundled model in llama.cpp, and as a Hugging Face
folder in transformers), openai (a loopback server)."""

from __future__ import annotations

import pytest

from assistant.errors import AssistantError, ConfigError
from assistant.models import Generator, Message

BACKENDS = [
    "fake_generator",
    pytest.param("local_generator", marks=pytest.mark.integration),
    pytest.param("transformers_generator", marks=pytest.mark.integration),
    "openai_generator",
]
QUESTION = [Message("system", "You are helpful."), Message("user", "Explain what a network router does.")]


@pytest.fixture(params=BACKENDS)
def generator(request: pytest.FixtureRequest) -> Generator:
    return request.getfixturevalue(request.param)


def test_generate_reports_text_usage_and_latency(generator: Generator) -> None:
    reply = generator.generate(QUESTION, max_tokens=12)
    assert reply.text.strip()
    assert reply.usage.prompt_tokens > 0
    assert 1 <= reply.usage.completion_tokens <= 12
    assert reply.text == generator.generate(QUESTION, max_tokens=12).text  # greedy: the same every time
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.latency_s > 0
    assert 0 < reply.time_to_first_token_s <= reply.latency_s
    assert reply.model == generator.model_id
    assert reply.finish_reason in {"stop", "length"}


def test_stream_yields_the_same_text_as_generate_when_greedy(generator: Generator) -> None:
    stream = generator.stream(QUESTION, max_tokens=12, temperature=0.0)
    pieces = list(stream)
    assert len(pieces) > 1, "streaming should deliver the answer in several pieces"
    assert "".join(pieces) == stream.generation.text
    assert stream.generation.text == generator.generate(QUESTION, max_tokens=12, temperature=0.0).text


def test_max_tokens_cuts_the_answer_and_says_so(generator: Generator) -> None:
    reply = generator.generate(QUESTION, max_tokens=3)
    assert reply.usage.completion_tokens == 3
    assert reply.finish_reason == "length"


def test_accepts_openai_style_dicts(generator: Generator) -> None:
    reply = generator.generate([{"role": "user", "content": "Say hello."}], max_tokens=4)
    assert reply.text.strip()


def test_closing_a_stream_early_leaves_the_generator_usable(generator: Generator) -> None:
    stream = generator.stream(QUESTION, max_tokens=12)
    next(stream)
    stream.close()
    assert generator.generate(QUESTION, max_tokens=2).usage.completion_tokens == 2


def test_bad_requests_fail_clearly(generator: Generator) -> None:
    with pytest.raises(AssistantError, match="no messages"):
        generator.generate([])
    with pytest.raises(ConfigError, match="Unknown generation option"):
        generator.generate(QUESTION, max_length=3)
    with pytest.raises(ConfigError, match="max_tokens"):
        generator.generate(QUESTION, max_tokens=0)
    with pytest.raises(AssistantError, match="role"):
        generator.generate([{"role": "robot", "content": "hi"}])



@pytest.mark.integration
@pytest.mark.parametrize("backend", ["local_generator", "transformers_generator"])  # the doubles do not sample
def test_a_seed_makes_sampling_repeatable(backend: str, request: pytest.FixtureRequest) -> None:
    generator = request.getfixturevalue(backend)
    first, again, other = (generator.generate(QUESTION, max_tokens=12, temperature=1.0, seed=seed).text
                           for seed in (7, 7, 8))
    assert first == again and first != other


def test_a_stop_sequence_ends_the_answer_before_it(generator: Generator) -> None:
    full = generator.generate(QUESTION, max_tokens=12)
    stop = next(word for word in full.text.split()[1:] if len(word) >= 4)
    cut = generator.generate(QUESTION, max_tokens=12, stop=[stop, "never-in-the-text"])
    assert cut.text == full.text[:full.text.index(stop)]
    assert cut.finish_reason == "stop" and cut.usage.completion_tokens <= full.usage.completion_tokens
    with pytest.raises(ConfigError, match="stop"):
        generator.generate(QUESTION, stop=["a", "b", "c", "d", "e"])
