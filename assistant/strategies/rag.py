"""rag: the most relevant knowledge-base chunks go into the prompt, numbered, fenced as data, to be cited."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.models import Message
from assistant.prompts import NOTHING_RELEVANT, rag_chat, source_block, with_examples
from assistant.retrieval import Passage, Retriever
from assistant.strategies.base import Prepared, Source, Strategy, fits


class RagStrategy(Strategy):
    name = "rag"

    def __init__(self, generator, retriever: Retriever, k: int = 4, threshold: float | None = None,
                 mode: str = "hybrid", sources: list[str] | None = None, bank=None, examples_k: int = 2) -> None:
        super().__init__(generator)
        self.retriever = retriever
        self.k, self.threshold, self.mode, self.sources = k, threshold, mode, sources
        self.bank, self.examples_k = bank, examples_k  # rag+few-shot: examples as turns before the sources
        if bank is not None:
            self.name = "rag+few-shot"

    def _prepare(self, question: str, history: Sequence[Message]) -> Prepared:
        passages = self.retriever.retrieve(retrieval_query(question, history), self.k, self.mode,  # type: ignore
                                           self.threshold, self.sources)
        retrieval = self.retriever.describe(self.mode)
        if not passages:
            return Prepared(direct_reply=NOTHING_RELEVANT, retrieval=retrieval)
        passages = self._fit(question, history, passages)
        blocks = [source_block(n, p.source, p.location, p.text) for n, p in enumerate(passages, start=1)]
        sources = [Source(n, p.source, p.location, p.text, p.score, p.chunk_id)
                   for n, p in enumerate(passages, start=1)]
        messages = rag_chat(question, blocks, history)
        if self.bank is None:
            return Prepared(messages, sources, retrieval=retrieval)
        from assistant.strategies.fewshot import select_examples

        examples = select_examples(self.generator, self.bank, question, self.examples_k, messages)
        return Prepared(with_examples(messages, examples), sources, examples, retrieval=retrieval)

    def _fit(self, question: str, history: Sequence[Message], passages: list[Passage]) -> list[Passage]:
        """Drop the lowest-ranked passages until the prompt leaves room for the answer in the context window."""
        kept = list(passages)
        while len(kept) > 1:
            blocks = [source_block(n, p.source, p.location, p.text) for n, p in enumerate(kept, start=1)]
            if fits(self.generator, rag_chat(question, blocks, history)):
                break
            kept.pop()
        return kept


def retrieval_query(question: str, history: Sequence[Message]) -> str:
    """A follow-up ("and on Linux?") is searched together with the previous question, which it leans on."""
    previous = next((m.content for m in reversed(history) if m.role == "user"), "")
    return f"{previous}\n{question}" if previous else question
