"""Where the index is stored: FAISS vectors, passages and a manifest, swapped in atomically.

Layout of an index folder::

    CURRENT                  the name of the active generation (replaced atomically)
    gen-<time>-<random>/     one complete build
        manifest.json        written last: what built it and checksums of the other files
        vectors.faiss        normalised passage vectors (inner product = cosine)
        passages.jsonl       one passage per line, in vector order
        documents.json       the articles' metadata
        sentences.json       [passage, start, end] of every sentence of every passage
        sentences.npy        their normalised vectors (same model; for scoring and highlight)
        lexical-*            the BM25 index over the passages (see index.store.lexical)

A build writes a new generation beside the active one and only then points ``CURRENT`` at
it, so a crash or SIGKILL mid-build leaves the previous index intact and loadable.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import mmap
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np

from corpus.records import Document, Passage
from corpus.sentences import sentence_spans
from index.store import lexical
from index.store.manifest import CorpusRecord, Manifest, ModelRecord
from index.store.milvus import MilvusRows, MilvusStore, MilvusVectorIndex
from index.store.pointer import CURRENT, active_generation, current_generation, rebuild_hint
from index.store.vectors import EXACT_MAX_PASSAGES, build_vector_index, describe
from qabot.errors import IndexNotReady, QabotError
from qabot.files import file_sha256

#: 2: sentence vectors and the lexical (BM25) index were added. 3: the manifest holds the
#: index's null statistics (``calibration``, see index.calibration).
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
PASSAGES = "passages.jsonl"
DOCUMENTS = "documents.json"
SENTENCES = "sentences.json"
SENTENCE_VECTORS = "sentences.npy"
DATA_FILES = (VECTORS, PASSAGES, DOCUMENTS, SENTENCES, SENTENCE_VECTORS, *lexical.FILES)
#: The files that hold vectors: not written when the vectors are in Milvus.
VECTOR_FILES = (VECTORS, SENTENCE_VECTORS)


@dataclass(frozen=True)
class StoredIndex:
    """An index loaded into memory (the sentence vectors memory-mapped), ready to search."""

    #: The passage vectors: a FAISS index, or the same operations over Milvus.
    vectors: faiss.Index | MilvusVectorIndex
    passages: list[Passage]
    documents: dict[str, Document]
    manifest: Manifest
    generation: str
    index_dir: Path
    #: The BM25 index over the same passages, in the same order.
    lexical: lexical.LexicalIndex
    #: One row per sentence: (passage id, start, end) character offsets in its text.
    sentence_spans: np.ndarray
    #: Their normalised vectors, memory-mapped read-only (or read by row from Milvus);
    #: empty (0 rows) when the index was written without them.
    sentence_vectors: np.ndarray | MilvusRows


def load_index(index_dir: Path, vector_store: MilvusStore | None = None) -> StoredIndex:
    """Load the active generation, checking every file against the manifest.
    ``vector_store``: where the vectors are when the generation was built with them in
    Milvus (its manifest says so)."""
    generation = active_generation(index_dir)
    folder = index_dir / generation
    manifest = _read_manifest(index_dir, folder)
    if manifest.vector_store and vector_store is None:
        raise IndexNotReady(
            f"The index in {index_dir} keeps its vectors in Milvus ({manifest.vector_store}): "
            "set QABOT_VECTOR_STORE to it, or rebuild the index without it."
        )
    for name in _data_files(manifest):
        expected = manifest.files.get(name)
        if not (folder / name).is_file() or file_sha256(folder / name) != expected:
            raise IndexNotReady(
                f"The index in {index_dir} is corrupt: {name} is missing or does not match "
                f"its checksum. {rebuild_hint(index_dir)}"
            )
    return _read_generation(index_dir, generation, manifest, vector_store)


def _data_files(manifest: Manifest) -> tuple[str, ...]:
    if manifest.vector_store:
        return tuple(name for name in DATA_FILES if name not in VECTOR_FILES)
    return DATA_FILES


def _read_generation(
    index_dir: Path, generation: str, manifest: Manifest, vector_store: MilvusStore | None = None
) -> StoredIndex:
    """The data files of one generation folder, checked for consistency with ``manifest``."""
    folder = index_dir / generation
    try:
        if manifest.vector_store:
            vectors, sentence_vectors = vector_store.open(generation)
        else:
            vectors = faiss.read_index(str(folder / VECTORS))
            sentence_vectors = _read_or_map(folder / SENTENCE_VECTORS)
        passages = [Passage(**json.loads(line)) for line in _lines(folder / PASSAGES)]
        documents = {
            d["doc_id"]: Document(**d)
            for d in json.loads((folder / DOCUMENTS).read_text(encoding="utf-8"))
        }
        spans = np.asarray(
            json.loads((folder / SENTENCES).read_text(encoding="utf-8")), dtype=np.int64
        ).reshape(-1, 3)
        lexical_index = lexical.LexicalIndex.load(folder, [p.language for p in passages])
    except (RuntimeError, ValueError, TypeError, KeyError, OSError) as exc:
        raise IndexNotReady(
            f"The index in {index_dir} cannot be read ({exc}). {rebuild_hint(index_dir)}"
        ) from exc
    problem = _inconsistency(vectors, passages, manifest, spans, sentence_vectors)
    if problem:
        raise IndexNotReady(
            f"The index in {index_dir} is inconsistent: {problem}. {rebuild_hint(index_dir)}"
        )
    if isinstance(sentence_vectors, MilvusRows) and len(passages) <= EXACT_MAX_PASSAGES:
        # A small index is scored whole per question: read its sentence vectors once, as the
        # folder's are (in memory below 64 MB).
        sentence_vectors = sentence_vectors[:]
    if not isinstance(sentence_vectors, MilvusRows):
        sentence_vectors = np.ascontiguousarray(sentence_vectors, dtype=np.float32)
    return StoredIndex(
        vectors, passages, documents, manifest, generation, index_dir,
        lexical_index, spans, sentence_vectors,
    )


def _inconsistency(
    vectors: faiss.Index, passages: list[Passage], manifest: Manifest, spans: np.ndarray,
    sentence_vectors: np.ndarray,
) -> str | None:
    """What does not fit together in a generation whose files all match their checksums (a
    damaged build, or files edited and re-hashed), or None: caught here, not mid-question."""
    dimension = manifest.model.dimension or vectors.d
    if vectors.ntotal != len(passages) or len(passages) != manifest.passages:
        return f"{VECTORS}: {vectors.ntotal} vectors for {len(passages)} passages"
    if vectors.d != dimension:
        return f"{VECTORS}: vectors of dimension {vectors.d}, the model's is {dimension}"
    if len(sentence_vectors) not in (0, len(spans)):
        return f"{SENTENCE_VECTORS}: {len(sentence_vectors)} sentence vectors for {len(spans)} sentences"
    if len(sentence_vectors) and sentence_vectors.shape[1:] != (dimension,):
        return f"{SENTENCE_VECTORS}: vectors of shape {sentence_vectors.shape[1:]}, not ({dimension},)"
    if len(spans):
        owners, starts, ends = spans[:, 0], spans[:, 1], spans[:, 2]
        lengths = np.array([len(p.text) for p in passages])
        if (
            owners.min() < 0 or owners.max() >= len(passages) or (np.diff(owners) < 0).any()
            or (starts < 0).any() or (ends <= starts).any() or (ends > lengths[owners]).any()
        ):
            return f"{SENTENCES}: sentence spans outside their passages"
    return None


#: Sentence vector files up to this size are read into memory; larger ones are memory-mapped.
#: Mapped, a file truncated under a running bot kills it with SIGBUS on the next question
#: that reads a missing page (no Python handler can catch that); read, it cannot. Builds
#: never change a generation's files, so only outside tampering truncates one.
IN_MEMORY_MAX_BYTES = 64 * 2**20


def _read_or_map(path: Path) -> np.ndarray:
    """The array in a ``.npy`` file, read-only: in memory up to :data:`IN_MEMORY_MAX_BYTES`,
    memory-mapped above."""
    if path.stat().st_size > IN_MEMORY_MAX_BYTES:
        return _mapped_array(path)
    array = np.load(path, allow_pickle=False)
    array.setflags(write=False)
    return array


def _mapped_array(path: Path) -> np.ndarray:
    """The array in a ``.npy`` file, memory-mapped read-only with read-ahead off.

    A large index's engine reads a few hundred scattered rows per question; with the
    kernel's default read-ahead each row would bring in (and count in the process's RSS)
    some 100 KB around it, soon the whole file.
    """
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"{path.name}: unsupported .npy format version {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else (
            np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(handle)
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        offset = handle.tell()
    if hasattr(mmap, "MADV_RANDOM"):
        mapped.madvise(mmap.MADV_RANDOM)
    count = math.prod(shape)
    array = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape, order="F" if fortran else "C")


def passage_sentences(passages: list[Passage]) -> np.ndarray:
    """(passage id, start, end) of every sentence of every passage, in passage order."""
    rows = [
        (pid, start, end)
        for pid, passage in enumerate(passages)
        for start, end in sentence_spans(passage.text)
    ]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def write_index(
    index_dir: Path,
    vectors: np.ndarray,
    passages: list[Passage],
    documents: list[Document],
    *,
    model: ModelRecord = ModelRecord(),
    corpus: CorpusRecord = CorpusRecord(),
    build_seconds: float = 0.0,
    sentence_vectors: np.ndarray | None = None,
    calibrate: Callable[[StoredIndex], dict] | None = None,
    vector_store: MilvusStore | None = None,
) -> Path:
    """Write a complete new generation, then make it the active one. Returns its folder.

    ``model`` and ``corpus`` say what built it (the manifest records them with
    ``build_seconds``, the time the build took to get here).

    ``sentence_vectors`` holds one vector per row of :func:`passage_sentences`; without
    them the index still works, with passage vectors only (and a slower highlight).
    ``calibrate`` reads the new generation before it is active; what it returns is stored
    in the manifest as ``calibration`` (see index.calibration).
    ``vector_store``: put the vectors in Milvus instead of the folder (uploaded before the
    generation becomes active; see index.store.milvus).
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    previous = current_generation(index_dir) or ""
    # Half-written generations of killed builds go first, so they never pile up.
    _remove_other_generations(index_dir, keep=previous)
    generation = time.strftime("gen-%Y%m%dT%H%M%S-") + secrets.token_hex(3)
    folder = index_dir / generation
    folder.mkdir()
    with _removed_on_failure(folder):
        vector_index = _write_data(folder, vectors, passages, documents, sentence_vectors, vector_store)
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            passages=len(passages),
            files={},
            model=model,
            corpus=corpus,
            vector_index=vector_index,
            vector_store=vector_store.address if vector_store else "",
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            build_seconds=round(build_seconds, 2),
        )
        files = {name: file_sha256(folder / name) for name in _data_files(manifest)}
        manifest = dataclasses.replace(manifest, files=files)
        if calibrate is not None:
            calibration = calibrate(_read_generation(index_dir, generation, manifest, vector_store))
            manifest = dataclasses.replace(manifest, calibration=calibration)
        for name in _data_files(manifest):
            _fsync(folder / name)
        _write_durably(
            folder / MANIFEST, json.dumps(manifest.to_dict(), ensure_ascii=False, indent=1)
        )
        _fsync(folder)
        _write_durably(index_dir / (CURRENT + ".tmp"), generation)
        os.replace(index_dir / (CURRENT + ".tmp"), index_dir / CURRENT)
    _fsync(index_dir)
    _remove_other_generations(index_dir, keep=generation)
    if vector_store is not None:  # the previous generation's collections serve until bots reload
        vector_store.activate(generation, keep={previous} - {""})
    return folder


def _write_data(
    folder: Path,
    vectors: np.ndarray,
    passages: list[Passage],
    documents: list[Document],
    sentence_vectors: np.ndarray | None,
    vector_store: MilvusStore | None,
) -> str:
    """A new generation's data files (its vectors in Milvus instead, with a store); returns
    the kind of vector index, for the manifest."""
    with open(folder / PASSAGES, "w", encoding="utf-8") as out:
        for passage in passages:
            out.write(json.dumps(passage.to_dict(), ensure_ascii=False) + "\n")
    (folder / DOCUMENTS).write_text(
        json.dumps([d.to_dict() for d in documents], ensure_ascii=False, indent=1), encoding="utf-8"
    )
    spans = passage_sentences(passages)
    if sentence_vectors is None:
        spans, sentence_vectors = spans[:0], np.zeros((0, vectors.shape[1]), dtype=np.float32)
    if len(sentence_vectors) != len(spans):
        raise ValueError(f"{len(sentence_vectors)} sentence vectors for {len(spans)} sentences")
    (folder / SENTENCES).write_text(json.dumps(spans.tolist()), encoding="utf-8")
    if vector_store is None:
        vector_index = describe(_write_vectors(folder, vectors, sentence_vectors))
    else:
        vector_store.upload(
            folder.name, vectors, [p.language for p in passages], sentence_vectors, spans[:, 0]
        )
        vector_index = "Milvus FLAT (exact)"
    lexical.LexicalIndex.build(
        [p.indexed_text for p in passages], [p.language for p in passages]
    ).save(folder)
    return vector_index


@contextmanager
def _removed_on_failure(folder: Path) -> Iterator[None]:
    """Remove a new generation's folder if writing it fails before it becomes the active one
    (a full disk, an error, Ctrl-C): half written, it would only hold the space until the
    next build. A killed build leaves it; the next build removes it first."""
    try:
        yield
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _write_vectors(folder: Path, vectors: np.ndarray, sentence_vectors: np.ndarray) -> faiss.Index:
    """The folder's own vector files: the FAISS index and the sentence vector array."""
    vector_index = build_vector_index(vectors)
    faiss.write_index(vector_index, str(folder / VECTORS))
    np.save(folder / SENTENCE_VECTORS, np.ascontiguousarray(sentence_vectors, dtype=np.float32))
    return vector_index


@contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock so two builds never write the same index folder at once."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise QabotError(
                f"Another build of the index in {index_dir} is running; try again when it ends."
            ) from None
        yield


def index_size_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


def _read_manifest(index_dir: Path, folder: Path) -> Manifest:
    try:
        manifest = Manifest.from_dict(json.loads((folder / MANIFEST).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise IndexNotReady(
            f"The index in {index_dir} is corrupt: its manifest cannot be read ({exc}). "
            f"{rebuild_hint(index_dir)}"
        ) from exc
    if manifest.format_version != FORMAT_VERSION:
        raise IndexNotReady(
            f"The index in {index_dir} has format version {manifest.format_version}, "
            f"this qabot reads version {FORMAT_VERSION}. {rebuild_hint(index_dir)}"
        )
    return manifest


def _remove_other_generations(index_dir: Path, keep: str) -> None:
    """Delete superseded and half-written generations (a crashed build leaves one)."""
    for child in index_dir.iterdir():
        if child.is_dir() and child.name.startswith("gen-") and child.name != keep:
            shutil.rmtree(child, ignore_errors=True)


def _lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield line




def _write_durably(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


def _fsync(path: Path) -> None:
    """Flush a file or a folder's entries to disk, so a swap never points at lost data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def active_manifest(index_dir: Path) -> Manifest:
    """The active generation's manifest only: cheap, for checks that need no search."""
    return _read_manifest(index_dir, index_dir / active_generation(index_dir))


def load_documents(index_dir: Path) -> list[Document]:
    """The indexed articles' metadata only: cheap, for listings that need no search."""
    folder = index_dir / active_generation(index_dir)
    try:
        rows = json.loads((folder / DOCUMENTS).read_text(encoding="utf-8"))
        return [Document(**row) for row in rows]
    except (OSError, ValueError, TypeError) as exc:
        raise IndexNotReady(
            f"The index in {index_dir} is corrupt: {DOCUMENTS} cannot be read ({exc}). "
            f"{rebuild_hint(index_dir)}"
        ) from exc
