"""The stored index: round trip, clear errors on damage, and atomic replacement."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import faiss
import numpy as np
import pytest

from corpus.records import Document, Passage
from index.store.generations import load_documents, load_index, write_index
from index.store.pointer import CURRENT
from index.store.manifest import ModelRecord
from qabot.errors import IndexNotReady
from qabot.files import file_sha256


def _sample(n: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    passages = [Passage("doc-a", i + 1, f"Paragraph {i} 第{i}段", "en") for i in range(n)]
    documents = [Document("doc-a", "Title A", publisher="Pub", date="2024-07-07", language="en")]
    return vectors, passages, documents


def _write(index_dir: Path, seed: int = 0) -> Path:
    vectors, passages, documents = _sample(seed=seed)
    return write_index(index_dir, vectors, passages, documents, model=ModelRecord(id="test"))


def test_round_trip_keeps_vectors_passages_and_metadata(tmp_path):
    vectors, passages, documents = _sample()
    write_index(tmp_path, vectors, passages, documents, model=ModelRecord(id="test"))
    stored = load_index(tmp_path)
    assert stored.passages == passages
    assert stored.documents == {"doc-a": documents[0]}
    assert stored.manifest.passages == 5 and stored.manifest.model.id == "test"
    scores, ids = stored.vectors.search(vectors[2:3], 1)
    assert ids[0][0] == 2 and scores[0][0] == pytest.approx(1.0, abs=1e-5)
    assert load_documents(tmp_path) == documents


def test_missing_index_says_how_to_build(tmp_path):
    with pytest.raises(IndexNotReady, match=r"no index .*`qabot index build"):
        load_index(tmp_path / "nowhere")


@pytest.mark.parametrize("victim", ["vectors.faiss", "passages.jsonl", "documents.json"])
def test_corrupt_data_file_is_detected(tmp_path, victim):
    folder = _write(tmp_path)
    with open(folder / victim, "r+b") as handle:
        handle.seek(10)
        handle.write(b"\xff\x00garbage")
    with pytest.raises(IndexNotReady, match=rf"corrupt: {victim}.*qabot index build"):
        load_index(tmp_path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: (folder / "manifest.json").write_text("{not json"),
        lambda folder: (folder / "manifest.json").unlink(),
        lambda folder: (folder / "vectors.faiss").unlink(),
        lambda folder: (folder.parent / CURRENT).write_text("gen-missing"),
    ],
    ids=["manifest-garbled", "manifest-missing", "vectors-missing", "pointer-dangling"],
)
def test_damaged_index_gives_one_clear_error(tmp_path, damage):
    damage(_write(tmp_path))
    with pytest.raises(IndexNotReady) as info:
        load_index(tmp_path)
    message = str(info.value)
    assert "qabot index build" in message and "\n" not in message


def test_calibration_reads_the_new_generation_before_it_is_current(tmp_path):
    old = load_index(_write(tmp_path).parent).generation
    seen = {}

    def calibrate(stored):
        seen.update(passages=len(stored.passages), current=load_index(tmp_path).generation)
        return {"questions": 3, "pairs": {}}

    vectors, passages, documents = _sample(n=7, seed=1)
    write_index(tmp_path, vectors, passages, documents, model=ModelRecord(id="t"), calibrate=calibrate)
    assert seen == {"passages": 7, "current": old}  # the old index served meanwhile
    assert load_index(tmp_path).manifest.calibration == {"questions": 3, "pairs": {}}


def test_a_failed_calibration_leaves_the_previous_index_in_place(tmp_path):
    old = load_index(_write(tmp_path).parent).generation

    def calibrate(stored):
        raise RuntimeError("calibration failed")

    vectors, passages, documents = _sample(n=7, seed=1)
    with pytest.raises(RuntimeError):
        write_index(tmp_path, vectors, passages, documents, model=ModelRecord(id="t"), calibrate=calibrate)
    assert load_index(tmp_path).generation == old and len(load_index(tmp_path).passages) == 5


def test_old_format_version_asks_for_rebuild(tmp_path):
    folder = _write(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 0
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexNotReady, match="format version 0"):
        load_index(tmp_path)


def test_rebuild_replaces_and_cleans_up_previous_generation(tmp_path):
    first = _write(tmp_path, seed=0)
    second = _write(tmp_path, seed=1)
    assert load_index(tmp_path).generation == second.name
    assert not first.exists()


def test_build_killed_while_writing_leaves_previous_index_loadable(tmp_path):
    """SIGKILL in the middle of writing a new generation: the old one still answers."""
    old = _write(tmp_path, seed=0)
    script = textwrap.dedent(
        f"""
        import sys, time
        import numpy as np
        import index.store.generations as store
        from corpus.records import Document, Passage

        def stall(path):
            print("WRITING", flush=True)
            time.sleep(60)

        store._fsync = stall
        vectors = np.ones((3, 8), dtype=np.float32)
        passages = [Passage("doc-b", i, "new", "zh") for i in range(3)]
        store.write_index(store.Path({str(tmp_path)!r}), vectors, passages,
                          [Document("doc-b", "B")])
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        partial = [p for p in tmp_path.iterdir() if p.name.startswith("gen-") and p != old]
        assert partial, "the killed build should have started a new generation"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    stored = load_index(tmp_path)
    assert stored.generation == old.name
    assert stored.passages[0].doc_id == "doc-a"
    newest = _write(tmp_path, seed=2)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("gen-")] == [newest.name]


def test_half_written_generations_of_killed_builds_are_removed_when_the_next_build_starts(tmp_path):
    active = load_index(_write(tmp_path).parent).generation
    for n in range(3):  # what killed builds leave behind
        (tmp_path / f"gen-20260101T00000{n}-dead{n:02d}").mkdir()

    def calibrate(stored):
        leftovers = sorted(p.name for p in tmp_path.glob("gen-*"))
        assert len(leftovers) == 2 and active in leftovers  # the active one and the new one
        return {"questions": 0, "pairs": {}}

    vectors, passages, documents = _sample(n=6, seed=2)
    write_index(tmp_path, vectors, passages, documents, model=ModelRecord(id="t"), calibrate=calibrate)
    assert len(list(tmp_path.glob("gen-*"))) == 1


def _flat(vectors: np.ndarray) -> faiss.Index:
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def _tamper(folder: Path, name: str, write) -> None:
    """Change one file of a generation and record its new checksum, as a careless edit would."""
    write(folder / name)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = file_sha256(folder / name)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("name", "write", "said"),
    [
        ("lexical-indptr.npy", lambda p: np.save(p, np.load(p)[::-1]), "lexical-indptr.npy"),
        ("lexical-indices.npy", lambda p: np.save(p, np.load(p) + 1000), "lexical-indices.npy"),
        ("vectors.faiss", lambda p: faiss.write_index(_flat(np.ones((5, 4), np.float32)), str(p)),
         "vectors.faiss: vectors of dimension 4"),
        ("sentences.json", lambda p: p.write_text("[[0, 5, 99999]]"), "sentences"),
    ],
)
def test_a_re_hashed_tampered_file_is_refused_by_name(tmp_path, name, write, said):
    vectors, passages, documents = _sample()
    folder = write_index(tmp_path, vectors, passages, documents,
                         model=ModelRecord(id="test", dimension=8),
                         sentence_vectors=np.ones((5, 8), np.float32))
    _tamper(folder, name, write)
    with pytest.raises(IndexNotReady, match=said) as error:
        load_index(tmp_path)
    assert "qabot index build" in str(error.value)
