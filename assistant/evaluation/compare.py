"""The comparison runner: every strategy answers every held-out question, greedily, once.

Finished answers are appended to `<out>/answers/<strategy>.jsonl` as they come, tagged with a fingerprint of
everything that shapes them (strategy, model, knowledge base, k, examples file, generation settings). A re-run reuses
the lines whose fingerprint still matches: an interrupted run resumes where it stopped, and adding a strategy later
runs only that one.

With `concurrency` N > 1, N questions are in flight at once (threads: the work is waiting on a server — an OpenAI
endpoint, vLLM, `assistant serve`); retries with backoff on 429 and 5xx are the openai client's own
(ASSISTANT_OPENAI_MAX_RETRIES). Answers do not depend on the order they finish in, and the cache is written by the
calling thread, a line per answer, as each one finishes.
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.evaluation.evalset import EvalItem
from assistant.strategies import Strategy, StrategySpec
from ingest.pipeline import embedder_name

StrategyFactory = Callable[[str], Strategy]


@dataclass
class RunResult:
    items: list[EvalItem]
    answers: dict[str, dict[str, dict]]  # strategy → item id → Answer.to_dict()
    computed: int = 0  # pairs answered in this run (the rest came from the cache)
    warnings: list[str] = field(default_factory=list)


class Runner:
    def __init__(self, settings: Settings, strategies: list[str], out_dir: Path, collection: str | None = None,
                 k: int | None = None, examples: Path | None = None, factory: StrategyFactory | None = None,
                 progress: bool = True, embedder=None, concurrency: int = 1) -> None:
        if concurrency < 1:
            raise AssistantError(f"Concurrency must be 1 or more, got {concurrency}.")
        self.settings, self.out_dir, self.progress = settings, out_dir, progress
        # One local model on the CPU's cores answers one question at a time (llama.cpp serialises them anyway).
        self.concurrency = 1 if settings.backend == "local" else concurrency
        self.concurrency_note = [] if self.concurrency == concurrency else [
            f"--concurrency {concurrency} applies to a server backend (openai); the local backend answers one "
            "question at a time."]
        self.strategies = [StrategySpec.parse(name).name for name in strategies]  # canonical, validated up front
        if len(set(self.strategies)) != len(self.strategies):
            raise AssistantError(f"A strategy is named twice in {', '.join(strategies)}.")
        self.collection, self.k = collection or settings.collection, k or settings.top_k
        self.examples = examples or settings.examples
        self.factory = factory or self._build
        self._generators: dict[str | None, object] = {}  # one per model: plain, few-shot and rag share one
        self.embedder = embedder

    def run(self, items: list[EvalItem], fresh: bool = False) -> RunResult:
        result = RunResult(items, {}, warnings=self.concurrency_note + self.leakage(items))
        todo: list[tuple[str, EvalItem]] = []
        for name in self.strategies:
            cached = {} if fresh else self._cached(name)
            result.answers[name] = {i.id: cached[i.id] for i in items if i.id in cached}
            todo += [(name, i) for i in items if i.id not in cached]
        bar = tqdm(total=len(items) * len(self.strategies), initial=len(items) * len(self.strategies) - len(todo),
                   desc="answering", unit="answer", disable=not self.progress)
        built: dict[str, Strategy] = {}

        def strategy(name: str) -> Strategy:  # built in this thread, the first time it is needed
            if name not in built:
                built[name] = self.factory(name)
            return built[name]

        if self.concurrency == 1:
            answers = ((name, item, strategy(name).answer(item.question)) for name, item in todo)
        else:
            answers = self._concurrently(todo, {name: strategy(name) for name in dict.fromkeys(n for n, _ in todo)})
        with bar:
            for name, item, answer in answers:
                bar.set_postfix_str(name, refresh=False)
                row = answer.to_dict()
                self._append(name, item, row)
                result.answers[name][item.id] = row
                result.computed += 1
                bar.update()
        return result

    def _concurrently(self, todo: list[tuple[str, EvalItem]], strategies: dict[str, Strategy]) -> Iterator:
        """(strategy, item, answer) as each finishes, `concurrency` at a time. After an error the questions not
        started are dropped, those in flight still finish and are kept (cached), then the error is raised.
        Finished futures arrive through their done-callbacks: `as_completed` never hears of a cancelled one."""
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="compare")
        finished: queue.SimpleQueue[Future] = queue.SimpleQueue()
        futures: dict[Future, tuple[str, EvalItem]] = {}
        for name, item in todo:
            future = pool.submit(strategies[name].answer, item.question)
            futures[future] = (name, item)
            future.add_done_callback(finished.put)
        error: Exception | None = None
        try:
            for _ in futures:
                future = finished.get()
                if future.cancelled():
                    continue
                try:
                    answer = future.result()
                except Exception as exc:
                    error = error or exc
                    for pending in futures:
                        pending.cancel()  # only those not started yet
                    continue
                yield *futures[future], answer
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if error is not None:
            raise error

    # -- the cache ---------------------------------------------------------------------------------------------
    def fingerprint(self, name: str) -> str:
        s, spec = self.settings, StrategySpec.parse(name)
        shape = {"strategy": name, "backend": s.backend, "model": s.model, "adapter": str(s.adapter or ""),
                 "max_tokens": s.max_tokens, "temperature": s.temperature, "top_p": s.top_p, "seed": s.seed}
        if spec.rag:
            shape |= {"collection": self.collection, "k": self.k, "mode": s.retrieval_mode,
                      "threshold": s.relevance_threshold, "chunking": [s.chunk_size, s.chunk_overlap],
                      "embedder": embedder_name(s), "reranker": s.reranker,
                      "rerank_top_n": s.rerank_top_n if s.reranker else None}
        if spec.few_shot:
            shape |= {"examples": _file_hash(self.examples), "fewshot_k": s.fewshot_k}
        if spec.fine_tuned:
            shape["fine_tuned"] = _fine_tuned_identity(s, spec.fine_tuned)
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]

    def _cache_file(self, name: str) -> Path:
        return self.out_dir / "answers" / (re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".jsonl")

    def _cached(self, name: str) -> dict[str, dict]:
        path, fingerprint = self._cache_file(name), self.fingerprint(name)
        found: dict[str, dict] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # the half-written last line of an interrupted run
                    continue
                if row.get("fingerprint") == fingerprint:
                    found[row["item"]] = row["answer"]
        return found

    def _append(self, name: str, item: EvalItem, answer: dict) -> None:
        path = self._cache_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        row = {"item": item.id, "fingerprint": self.fingerprint(name), "answer": answer}
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")

    # -- leakage -----------------------------------------------------------------------------------------------
    def leakage(self, items: list[EvalItem]) -> list[str]:
        """Questions the model may have seen with their answers: scores on them flatter the strategy."""
        ids = {i.id: i for i in items}
        warnings = []
        if any(StrategySpec.parse(n).few_shot for n in self.strategies) and self.examples:
            from assistant.finetune.datasets import load_examples, prompt_hash

            seen = {prompt_hash(e.prompt) for e in load_examples(Path(self.examples))[0]}
            if leaked := sorted(set(ids) & seen):
                warnings.append(f"{len(leaked)} eval question(s) also appear in the example bank {self.examples} "
                                f"(few-shot may copy their answers), e.g. {ids[leaked[0]].question!r}.")
        for name in self.strategies:
            tuned = StrategySpec.parse(name).fine_tuned
            if tuned:
                from assistant.finetune.registry import Registry

                seen = set(Registry.from_settings(self.settings).get(tuned).training_hashes)
                if leaked := sorted(set(ids) & seen):
                    warnings.append(f"{len(leaked)} eval question(s) were in the training data of fine-tuned model "
                                    f"{tuned!r}, e.g. {ids[leaked[0]].question!r}.")
        return warnings

    def _build(self, name: str) -> Strategy:
        from assistant.strategies import build_strategy, generator_for

        tuned = StrategySpec.parse(name).fine_tuned
        if tuned not in self._generators:
            self._generators[tuned] = generator_for(name, self.settings)
        generator = self._generators[tuned]
        return build_strategy(name, self.settings, generator, collection=self.collection, k=self.k,
                              examples=Path(self.examples) if self.examples else None, embedder=self.embedder)


def _file_hash(path) -> str:
    if not path or not Path(path).is_file():
        return ""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _fine_tuned_identity(settings: Settings, name: str) -> list:
    from assistant.finetune.registry import Registry

    record = Registry.from_settings(settings).get(name)
    return [record.created, record.data_hash, record.model_id, record.status]


@dataclass
class Comparison:
    out_dir: Path
    files: dict[str, Path]
    summaries: list
    warnings: list[str]
    computed: int
    recommendation: str


def compare(settings: Settings, eval_path: Path, strategies: list[str], out_dir: Path | None = None,
            collection: str | None = None, k: int | None = None, examples: Path | None = None,
            limit: int | None = None, fresh: bool = False, progress: bool = True,
            factory: StrategyFactory | None = None, embedder=None, concurrency: int = 1) -> Comparison:
    """Read the eval set, answer (reusing the cache), score, and write the report: what the CLI and app call."""
    from assistant.embeddings import SentenceTransformerEmbedder
    from assistant.evaluation.evalset import read_eval
    from assistant.evaluation.report import recommend, write_report
    from assistant.evaluation.scoring import score, summarise

    settings = settings.model_copy(update={"temperature": 0.0})  # greedy: a re-run gives the same answers
    items, errors = read_eval(eval_path)
    items = items[:limit] if limit else items
    out_dir = out_dir or settings.home / "comparisons" / eval_path.stem
    embedder = embedder or SentenceTransformerEmbedder.from_settings(settings)
    runner = Runner(settings, strategies, out_dir, collection, k, examples, factory, progress, embedder, concurrency)
    result = runner.run(items, fresh)
    warnings = [f"{eval_path}: {e} (skipped)" for e in errors] + result.warnings
    rows = score(items, result.answers, embedder.embed)
    summaries = summarise(rows)
    files = write_report(out_dir, eval_path.name, rows, summaries, warnings)
    return Comparison(out_dir, files, summaries, warnings, result.computed, recommend(summaries))
