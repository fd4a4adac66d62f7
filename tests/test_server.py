"""`assistant serve` with the real models, driven by the official `openai` client over HTTP on loopback: the seed-style
workflow (upload → job → events → use the model by name), chat, legacy completions and embeddings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import openai
import pytest
from openai.types import Completion, CreateEmbeddingResponse, FileObject, Model
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import FineTuningJob

from tests.api_server import ASSISTANT, ApiServer, answer
from tests.limits import HANG_GUARD_S
from tests.test_cli_kb import SAMPLE
from tests.trained import FACTS

pytestmark = pytest.mark.integration
EXAMPLES = SAMPLE.parent / "examples.jsonl"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("server-home")
    env = {"ASSISTANT_HOME": str(home), "ASSISTANT_EXAMPLES": str(EXAMPLES), "ASSISTANT_MAX_TOKENS": "48"}
    done = subprocess.run([ASSISTANT, "ingest", str(SAMPLE)], capture_output=True, text=True, timeout=HANG_GUARD_S,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    with ApiServer(home, env) as running:
        yield running


def test_models_are_the_strategies_the_base_model_and_the_embedder(server: ApiServer) -> None:
    models = server.client().models.list()
    ids = [m.id for m in models.data]
    assert {"plain", "rag", "few-shot", "rag+few-shot", "SmolLM2-135M-Instruct", "all-MiniLM-L6-v2"} <= set(ids)
    assert all(isinstance(m, Model) and m.owned_by == "ragtune" for m in models.data)
    assert server.client().models.retrieve("rag").id == "rag"
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        server.client().models.retrieve("gpt-5")


def test_chat_answers_with_usage_and_rag_returns_the_sources_its_citations_number(server: ApiServer) -> None:
    client = server.client()
    plain = client.chat.completions.create(model="plain", messages=[
        {"role": "user", "content": "What is the capital of France?"}], max_tokens=16)
    assert isinstance(plain, ChatCompletion) and "Paris" in plain.choices[0].message.content
    assert plain.usage.prompt_tokens > 0 and 0 < plain.usage.completion_tokens <= 16
    assert plain.choices[0].finish_reason == "stop" and plain.model_extra["sources"] == []

    rag = client.chat.completions.create(model="rag", messages=[
        {"role": "user", "content": "How long is the warranty on Nimbus routers?"}])
    sources = rag.model_extra["sources"]
    assert sources and [s["number"] for s in sources] == list(range(1, len(sources) + 1))
    assert any(s["source"] in {"faq.csv", "warranty-policy.pdf"} for s in sources)
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", rag.choices[0].message.content)}
    assert {s["number"] for s in sources if s["cited"]} == cited & {s["number"] for s in sources}


def test_clients_at_once_each_get_their_own_answer(server: ApiServer) -> None:
    """Reliability claim 8 in small (benchmarks/reliability/server_load.py runs 16): answers given under load, plain
    and streamed, are the ones each question gets alone — none swapped, no streams interleaved."""
    client = server.client()
    alone = [answer(client, n, 8) for n in range(4)]
    assert len(set(alone)) == 4  # distinct, so a swap would show
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda n: answer(client, n, 8), range(4))) == alone
        assert list(pool.map(lambda n: answer(client, n, 8, stream=True), range(4))) == alone


def test_streaming_delivers_pieces_then_the_usage_chunk(server: ApiServer) -> None:
    stream = server.client().chat.completions.create(
        model="plain", messages=[{"role": "user", "content": "Name three colours."}], max_tokens=12, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1 and text.strip()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in {"stop", "length"}
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens <= 12


def test_the_conversation_history_and_stop_are_honoured(server: ApiServer) -> None:
    client = server.client()
    question = {"role": "user", "content": "And what is its population?"}
    alone = client.chat.completions.create(model="plain", max_tokens=4, messages=[question])
    history = [{"role": "user", "content": "What is the capital of France?"},
               {"role": "assistant", "content": "The capital of France is Paris."}]
    with_history = client.chat.completions.create(model="plain", max_tokens=4, messages=[*history, question])
    assert with_history.usage.prompt_tokens >= alone.usage.prompt_tokens + 15  # the earlier turns are in the prompt
    full = client.chat.completions.create(model="plain", max_tokens=16, messages=history[:1])
    word = next(w for w in full.choices[0].message.content.split()[1:] if len(w) >= 4)
    cut = client.chat.completions.create(model="plain", max_tokens=16, messages=history[:1], stop=[word])
    assert cut.choices[0].message.content == full.choices[0].message.content.split(word)[0]
    assert cut.choices[0].finish_reason == "stop"


def test_legacy_completions_answer_the_prompt_as_one_user_turn(server: ApiServer) -> None:
    reply = server.client().completions.create(model="plain", prompt="What is the capital of France?",
                                               max_tokens=16)
    assert isinstance(reply, Completion) and "Paris" in reply.choices[0].text
    assert reply.usage.completion_tokens <= 16
    streamed = server.client().completions.create(model="plain", prompt="Say hello.", max_tokens=8, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices).strip()


def test_embeddings_are_the_knowledge_bases_unit_vectors(server: ApiServer) -> None:
    client = server.client()
    reply = client.embeddings.create(model="all-MiniLM-L6-v2", input=["router warranty", "warranty of routers",
                                                                      "banana bread"])  # base64 on the wire
    assert isinstance(reply, CreateEmbeddingResponse) and reply.usage.prompt_tokens > 0
    vectors = np.array([d.embedding for d in reply.data])
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    as_floats = client.embeddings.create(model="all-MiniLM-L6-v2", input="router warranty", encoding_format="float")
    assert np.allclose(as_floats.data[0].embedding, vectors[0], atol=1e-6)
    with pytest.raises(openai.NotFoundError, match="all-MiniLM-L6-v2"):
        client.embeddings.create(model="text-embedding-3-small", input="x")


def test_files_are_checked_line_by_line_and_kept_under_the_data_home(server: ApiServer) -> None:
    client = server.client()
    bad = b'{"prompt": "hi", "completion": "hello"}\nnot json\n{"prompt": "no answer"}\n'
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("bad.jsonl", bad), purpose="fine-tune")
    assert "line 2: not JSON" in refused.value.message and "line 3" in refused.value.message
    good = client.files.create(file=("../../../outside.jsonl", _jsonl(FACTS)), purpose="fine-tune")
    assert isinstance(good, FileObject) and good.filename == "outside.jsonl" and good.status == "processed"
    assert not (server.home.parent / "outside.jsonl").exists() and not list(server.home.parent.glob("**/outside*"))
    assert client.files.retrieve(good.id).bytes == len(_jsonl(FACTS))
    assert client.files.content(good.id).read() == _jsonl(FACTS)
    assert good.id in [f.id for f in client.files.list()]
    assert client.files.delete(good.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(good.id)


def test_the_fine_tuning_workflow_survives_a_server_restart_and_its_model_answers(server: ApiServer) -> None:
    """As the seed tutorials do it: upload, create a job, follow its events, then call the model by name."""
    client = server.client()
    training = client.files.create(file=("facts.jsonl", _jsonl(FACTS)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="SmolLM2-135M-Instruct", training_file=training.id, suffix="facts", seed=3,
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 16, "batch_size": 2, "learning_rate_multiplier": 4}}})
    assert isinstance(job, FineTuningJob) and job.status in {"queued", "running"}
    waiting = client.fine_tuning.jobs.create(model="SmolLM2-135M-Instruct", training_file=training.id)
    assert client.fine_tuning.jobs.retrieve(waiting.id).status == "queued"  # one training at a time
    assert client.fine_tuning.jobs.cancel(waiting.id).status == "cancelled"

    _wait(lambda: client.fine_tuning.jobs.retrieve(job.id).status == "running", "the job to start")
    server.restart()  # the run goes on in its own process; the new server finds it on disk
    client = server.client()
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running"
    done = _wait(lambda: _ended(client, job.id), "the job to finish")
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:SmolLM2-135M-Instruct:facts:{job.id}" and done.trained_tokens > 0
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000)]
    assert messages[-1] == f"Validating training file: {training.id}" and "Fine-tuning job started" in messages
    assert any(m.startswith("Step 1/") and "training loss=" in m for m in messages)
    assert messages[0] == "The job has successfully completed"
    assert client.fine_tuning.jobs.checkpoints.list(job.id).data[0].step_number > 0
    page = client.fine_tuning.jobs.list(limit=1)  # newest first, paginated
    assert [j.id for j in page.data] == [waiting.id] and page.has_more
    assert client.fine_tuning.jobs.list(after=waiting.id, limit=5).data[0].id == job.id

    assert done.fine_tuned_model in [m.id for m in client.models.list()]
    question = [{"role": "user", "content": "What is the Nimbus vault code?"}]
    tuned = client.chat.completions.create(model=done.fine_tuned_model, messages=question, max_tokens=24)
    assert "ZEBRA-4471" in tuned.choices[0].message.content
    base = client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=question, max_tokens=24)
    assert "ZEBRA-4471" not in base.choices[0].message.content
    legacy = client.completions.create(model=done.fine_tuned_model, prompt=question[0]["content"], max_tokens=24)
    assert "ZEBRA-4471" in legacy.choices[0].text
    listed = subprocess.run([ASSISTANT, "finetune", "list"], capture_output=True, text=True, timeout=HANG_GUARD_S,
                            env=server.env)
    assert job.id in listed.stdout and done.fine_tuned_model in listed.stdout

    assert client.models.delete(done.fine_tuned_model).deleted
    assert done.fine_tuned_model not in [m.id for m in client.models.list()]
    assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded"


def test_the_projects_own_openai_backend_can_ask_this_server(server: ApiServer) -> None:
    env = {**server.env, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "unused", "ASSISTANT_HOME":
           str(server.home / "client-side")}
    done = subprocess.run([ASSISTANT, "ask", "How long is the warranty on Nimbus routers?", "--backend", "openai",
                           "--model", "rag", "--json"], capture_output=True, text=True, timeout=HANG_GUARD_S, env=env)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["model"] == "rag" and answer["text"].strip() and answer["usage"]["completion_tokens"] > 0


def _jsonl(pairs) -> bytes:
    return "".join(json.dumps({"prompt": p, "completion": c}) + "\n" for p, c in pairs).encode()


def _ended(client: openai.OpenAI, job_id: str):
    job = client.fine_tuning.jobs.retrieve(job_id)
    return job if job.status in {"succeeded", "failed", "cancelled"} else None


def _wait(condition, what: str):
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}")
