#!/usr/bin/env python
"""One-off measurement of a build-speed lever (issue 14): sentence vectors pooled from their
passage's own forward pass instead of embedding every sentence again.

Not part of the harness; the figures it prints are quoted in bench/perf_notes.md. A build
embeds each passage and each of its sentences (516 passages and 2,421 sentences on XQuAD),
because the hybrid scores sentences too. Pooling the passage's token states over each
sentence's span would embed the passages only. This script measures what that changes:

* the cosine of each pooled sentence vector to the sentence's own vector;
* two indexes over the same corpus, one with each kind of sentence vector (passage vectors,
  calibration and everything else built as usual), asked the same questions: hit@1, the
  share answered, the off-topic questions declined, and how many answer/decline decisions
  differ between the two.

Corpora: the bundled articles with the dev and off-topic questions of tests/data, and CMRC
trial (tuning data) with its questions and the off-topic ones. XQuAD is not used (test set).

    .venv/bin/python bench/sentence_pooling.py
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from concurrent.futures import Future
from pathlib import Path
from unittest import mock

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import index.build as build_module  # noqa: E402
from corpus import load_corpus  # noqa: E402
from index.embedding.embedder import Embedder  # noqa: E402
from index.retrieval.engine import Engine  # noqa: E402
from index.store.generations import passage_sentences  # noqa: E402
from qabot.evaluation import Question, Outcome, metrics, read_questions  # noqa: E402
from qabot.settings import Settings  # noqa: E402

DATA = ROOT / "tests" / "data"
CMRC = ROOT.parent / "shared" / "bench" / "cmrc-trial"
_SPACE_RUNS = re.compile(" {2,}")


def pooled_sentence_vectors(embedder: Embedder, passages) -> np.ndarray:
    """One vector per row of :func:`passage_sentences`: the mean of the passage's token states
    (from one forward pass over the whole passage, as the build embeds it) over the tokens
    that overlap the sentence, normalised. Reaches into the ONNX encoder's tokenizer and
    session: this is a measurement, not a code path."""
    encoder = embedder._encoder
    tokenizer, session = encoder._tokenizer, encoder._session
    prompt = encoder.pipeline.prompts.get("document", "")
    rows = passage_sentences(passages).tolist()
    vectors = np.zeros((len(rows), embedder.dimension), dtype=np.float32)
    for number, (pid, start, end) in enumerate(rows):
        if number == 0 or rows[number - 1][0] != pid:
            normalized = _normalize(tokenizer, prompt + passages[pid].indexed_text)
            states, spans = _token_states(tokenizer, session, normalized)
            cursor = 0
        sentence = _normalize(tokenizer, passages[pid].text[start:end]).strip()
        at = normalized.find(sentence, cursor)
        cursor = at + len(sentence)
        tokens = [i for i, (a, b) in enumerate(spans) if a < cursor and b > at]
        if at < 0 or not tokens:
            raise RuntimeError(f"sentence {number} not found among its passage's tokens")
        vector = states[tokens].mean(axis=0)
        vectors[number] = vector / np.linalg.norm(vector)
    return vectors


def _normalize(tokenizer, text: str) -> str:
    """The text as :class:`SentencePieceTokenizer` segments it (table, leading space, space runs)."""
    return _SPACE_RUNS.sub(" ", (" " + text).translate(tokenizer._table))


def _token_states(tokenizer, session, normalized: str) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The transformer's output for a normalised text, without its start and end tokens, and
    each token's span of characters in that text."""
    pieces = tokenizer._pieces.encode(normalized, return_type="proto").pieces[: tokenizer._content]
    char_at = np.zeros(len(normalized.encode()) + 1, dtype=np.int64)
    offset = 0
    for index, character in enumerate(normalized):
        width = len(character.encode())
        char_at[offset : offset + width] = index
        offset += width
    char_at[offset] = len(normalized)
    ids = np.array([[tokenizer._bos, *(p.id for p in pieces), tokenizer._eos]], dtype=np.int64)
    (hidden,) = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    spans = [(int(char_at[p.begin]), int(char_at[p.end])) for p in pieces]
    return hidden[0, 1:-1], spans


def ask_all(engine: Engine, questions: list[Question]) -> list[Outcome]:
    outcomes = []
    for question in questions:
        hits = engine.search(question.question, 10, None)
        outcomes.append(Outcome(question, texts=[h.passage.text for h in hits],
                                docs=[h.passage.doc_id for h in hits],
                                declined=not engine.is_good_match(hits)))
    return outcomes


def build_and_ask(embedder: Embedder, corpus: Path, folder: Path, questions, sentence_vectors=None):
    """Build an index of ``corpus`` in ``folder`` (its sentence rows replaced by
    ``sentence_vectors`` if given) and ask it ``questions``."""
    embed = build_module.embed_with_cache

    def replacing(embedder, texts, index_dir, progress, queries=()):
        vectors, embedded = embed(embedder, texts, index_dir, progress, queries=queries)
        if sentence_vectors is not None:
            passages = len(texts) - len(sentence_vectors)
            vectors = vectors.copy()
            vectors[passages : len(texts)] = sentence_vectors
        return vectors, embedded

    with mock.patch.object(build_module, "embed_with_cache", replacing):
        build_module.build_index(corpus, folder, embedder)
    loaded: Future[Embedder] = Future()
    loaded.set_result(embedder)
    return ask_all(Engine.load(folder, loaded), questions)


def compare(embedder: Embedder, name: str, corpus: Path, questions: list[Question], scratch: Path) -> None:
    passages = load_corpus(corpus).passages
    rows = passage_sentences(passages).tolist()
    own = embedder.embed_passages([passages[p].text[a:b] for p, a, b in rows])
    pooled = pooled_sentence_vectors(embedder, passages)
    cosines = (own * pooled).sum(axis=1)
    print(f"\n## {name}: {len(passages)} passages, {len(rows)} sentences, {len(questions)} questions")
    print(f"cosine pooled to own: median {np.median(cosines):.3f}, 10th percentile "
          f"{np.percentile(cosines, 10):.3f}, min {cosines.min():.3f}")
    results = {
        "own": build_and_ask(embedder, corpus, scratch / f"{name}-own", questions),
        "pooled": build_and_ask(embedder, corpus, scratch / f"{name}-pooled", questions, pooled),
    }
    for kind, outcomes in results.items():
        scores = metrics(outcomes)
        off = scores.get("off_topic", {})
        print(f"{kind:>6}: hit@1 {scores['hit@1']:.3f}, answered {scores.get('answered', 0):.3f}, "
              f"off-topic declined {off.get('declined', 0):.3f} of {off.get('n', 0)}")
    changed = sum(a.declined != b.declined for a, b in zip(results["own"], results["pooled"]))
    print(f"decisions that differ: {changed} of {len(questions)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cmrc", type=Path, default=CMRC)
    args = parser.parse_args()
    embedder = Embedder.load(Settings.from_env().model_source)
    if embedder.backend != "onnx":
        raise SystemExit("This measurement needs the bundled model's ONNX path (QABOT_EMBED_BACKEND=auto).")
    off_topic = read_questions(DATA / "dev_offtopic.jsonl")
    corpora = [
        ("bundled", ROOT / "corpus" / "articles",
         read_questions(DATA / "dev_questions.jsonl") + off_topic + read_questions(DATA / "offtopic_more.jsonl")),
        ("cmrc", args.cmrc / "corpus", read_questions(args.cmrc / "questions.jsonl") + off_topic),
    ]
    with tempfile.TemporaryDirectory(prefix="qabot-pooling-") as scratch:
        for name, corpus, questions in corpora:
            compare(embedder, name, corpus, questions, Path(scratch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
