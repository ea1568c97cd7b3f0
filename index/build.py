"""Building an index: corpus folder -> passages -> vectors -> a new stored generation."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from corpus.read import MAX_ARTICLE_BYTES, find_article_files
from index.calibration import null_statistics, reference_questions
from index.embedding.cache import embed_with_cache
from index.embedding.embedder import Embedder, ModelSource, Progress
from index.store.generations import (
    active_manifest,
    build_lock,
    index_size_bytes,
    passage_sentences,
    write_index,
)
from index.store.manifest import CorpusRecord, ModelRecord
from index.store.milvus import MilvusStore
from qabot.errors import QabotError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildReport:
    """What a build did, for the CLI summary and the bot's progress message."""

    documents: int
    passages: int
    seconds: float
    index_bytes: int
    warnings: list[str] = field(default_factory=list)
    #: Texts (passages and their sentences) embedded by this build; the rest were cached.
    embedded: int = 0
    texts: int = 0


def build_index(
    corpus_dir: Path,
    index_dir: Path,
    model: Embedder | ModelSource,
    *,
    max_article_bytes: int = MAX_ARTICLE_BYTES,
    progress: Progress | None = None,
    vector_store: MilvusStore | None = None,
) -> BuildReport:
    """Embed the articles in ``corpus_dir`` and atomically replace the index in
    ``index_dir``; the old one stays on any failure.

    ``model``: an already loaded embedder (the bot passes its own, to avoid loading the model
    twice), or which one to load, after the corpus and the folder have been checked.
    ``vector_store``: Milvus, to keep the vectors there instead of in the folder.
    """
    from corpus import load_corpus  # the reading pipeline: not imported by a bot that only answers

    started = time.perf_counter()
    corpus = load_corpus(corpus_dir, max_article_bytes)
    if not corpus.passages:
        raise QabotError(
            f"No passages found in {corpus_dir}: add .md, .txt, .html or .pdf articles "
            "there (or point QABOT_CORPUS_DIR at them). The existing index was left unchanged."
        )
    _check_writable(index_dir)
    embedder = model if isinstance(model, Embedder) else Embedder.load(model)
    with build_lock(index_dir):
        # Passages and their sentences are embedded in one run (progress counts texts);
        # texts unchanged since the last build come from the cache.
        texts = [p.indexed_text for p in corpus.passages]
        sentences = [
            corpus.passages[pid].text[start:end]
            for pid, start, end in passage_sentences(corpus.passages).tolist()
        ]
        questions = reference_questions()
        with _writing(index_dir):
            everything, embedded = embed_with_cache(
                embedder, texts + sentences, index_dir, progress, queries=questions
            )
        passages_end = len(texts) + len(sentences)
        vectors, sentence_vectors = everything[: len(texts)], everything[len(texts) : passages_end]
        reference_vectors = everything[passages_end:]
        model = ModelRecord(
            id=embedder.model_id,
            fingerprint=embedder.fingerprint,
            weights=embedder.weights,
            backend=embedder.backend,
            dimension=embedder.dimension,
            probe=tuple(round(float(x), 6) for x in embedder.probe),
        )
        articles = CorpusRecord(
            folder=str(corpus_dir),
            fingerprint=corpus_fingerprint(corpus_dir),
            documents=len(corpus.documents),
        )
        with _writing(index_dir):
            folder = write_index(
                index_dir, vectors, corpus.passages, corpus.documents,
                model=model, corpus=articles, build_seconds=time.perf_counter() - started,
                sentence_vectors=sentence_vectors,
                calibrate=lambda stored: null_statistics(embedder, stored, reference_vectors).to_dict(),
                vector_store=vector_store,
            )
    return BuildReport(
        documents=len(corpus.documents),
        passages=len(corpus.passages),
        seconds=time.perf_counter() - started,
        index_bytes=index_size_bytes(folder),
        warnings=list(corpus.warnings),
        embedded=embedded,
        texts=passages_end,
    )


#: The errors of a disk (or a disk quota) that is full.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
#: Free bytes under which a failed write is put down to a full disk even without ENOSPC (a
#: short write, as NumPy reports one: "56832 requested and 51168 written").
_NEARLY_FULL = 64 * 2**20


@contextmanager
def _writing(index_dir: Path) -> Iterator[None]:
    """Turn a failed write into the build's error: what went wrong, and that the index in
    use is the one there was (the writers remove what they had half written)."""
    try:
        yield
    except OSError as exc:
        free = _free_bytes(index_dir)
        full = exc.errno in _DISK_FULL or (free is not None and free < _NEARLY_FULL)
        raise QabotError(
            f"Could not write the index in {index_dir} ({exc.strerror or exc}"
            + (f"; {free / 1e6:,.1f} MB free there" if free is not None else "")
            + "); the index there was left unchanged."
            + (" Free some disk space and build again." if full else "")
        ) from exc


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _check_writable(index_dir: Path) -> None:
    """Fail before the model loads when the index folder cannot be written."""
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        probe = index_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise QabotError(
            f"Cannot write the index in {index_dir} ({exc.strerror or exc}). Choose a folder "
            "you can write with --index (or QABOT_INDEX_DIR)."
        ) from exc


def corpus_fingerprint(folder: Path) -> str:
    """A hash of every article file's name and bytes (the files the reader reads, so hidden
    ones do not count): tells whether the corpus changed."""
    digest = hashlib.sha256()
    for path in find_article_files(folder):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stale_reason(index_dir: Path, corpus_dir: Path, vector_store: str = "") -> str | None:
    """Why the index in ``index_dir`` does not serve the articles in ``corpus_dir`` with its
    vectors in ``vector_store`` (no index, another folder, changed articles, vectors kept
    elsewhere), or None when it does."""
    try:
        manifest = active_manifest(index_dir)
    except QabotError:
        return "there is no usable index yet"
    if manifest.vector_store != vector_store:
        return f"its vectors are in {manifest.vector_store or 'the index folder'}, not {vector_store or 'the index folder'}"
    return corpus_changes(manifest.corpus, corpus_dir)


def corpus_changes(recorded: CorpusRecord, corpus_dir: Path) -> str | None:
    """Why an index built from the articles ``recorded`` does not hold the articles now in
    ``corpus_dir``, or None when it does."""
    if Path(recorded.folder).resolve() != corpus_dir.resolve():
        return f"it was built from {recorded.folder or 'another folder'}"
    if not corpus_dir.is_dir() or recorded.fingerprint != corpus_fingerprint(corpus_dir):
        return "the articles changed since it was built"
    return None
