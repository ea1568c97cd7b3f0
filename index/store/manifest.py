"""What a generation records about itself (``manifest.json``): the model and corpus that built
it, when, the checksums of its files, and the calibration that tells when to answer.

Read once when an index is loaded, into typed records, so that no other code digs in a
nested dict (a missing key was a ``KeyError`` somewhere far from the file that lacked it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelRecord:
    """The embedding model an index was built with (see index.embedding.embedder)."""

    id: str = ""
    #: A short hash of the probe embedding: which model, by what it computes.
    fingerprint: str = ""
    #: A hash of the weight files when the model was a local folder.
    weights: str = ""
    backend: str = ""
    dimension: int = 0
    #: The probe text's embedding, compared with the loaded model's on every load.
    probe: tuple[float, ...] = ()


@dataclass(frozen=True)
class CorpusRecord:
    """The articles an index was built from: tells whether it is stale."""

    folder: str = ""
    #: A hash of every article file's name and bytes (index.build.corpus_fingerprint).
    fingerprint: str = ""
    documents: int = 0


@dataclass(frozen=True)
class Manifest:
    """One generation's ``manifest.json``, typed."""

    format_version: int
    passages: int
    #: sha256 of every data file, checked on load.
    files: dict[str, str]
    model: ModelRecord = field(default_factory=ModelRecord)
    corpus: CorpusRecord = field(default_factory=CorpusRecord)
    #: FAISS's description of the vector index ("Flat", "IVF256,Flat"), or Milvus's.
    vector_index: str = ""
    #: Where the vectors are when not in the folder: the QABOT_VECTOR_STORE it was built
    #: with (milvus://host:port/name); "" for the folder's own files.
    vector_store: str = ""
    built_at: str = ""
    build_seconds: float = 0.0
    #: What unrelated questions get on this index (index.calibration); None if not run.
    calibration: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Manifest":
        """Raises ValueError (or TypeError) when ``raw`` is not a qabot manifest."""
        if not isinstance(raw, dict) or not isinstance(raw.get("files"), dict):
            raise ValueError("not a qabot manifest")
        model = dict(raw.get("model") or {})
        model["probe"] = tuple(float(x) for x in model.get("probe", ()))
        return cls(
            format_version=int(raw.get("format_version", 0)),
            passages=int(raw.get("passages", -1)),
            files={str(k): str(v) for k, v in raw["files"].items()},
            model=ModelRecord(**_known(ModelRecord, model)),
            corpus=CorpusRecord(**_known(CorpusRecord, raw.get("corpus") or {})),
            vector_index=str(raw.get("vector_index", "")),
            vector_store=str(raw.get("vector_store", "")),
            built_at=str(raw.get("built_at", "")),
            build_seconds=float(raw.get("build_seconds", 0.0)),
            calibration=raw.get("calibration"),
        )

    def to_dict(self) -> dict[str, Any]:
        raw = dataclasses.asdict(self)
        raw["model"]["probe"] = list(self.model.probe)
        if self.calibration is None:
            del raw["calibration"]
        return raw


def _known(record: type, values: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``record`` in ``values`` (a newer qabot may have written more)."""
    names = {f.name for f in dataclasses.fields(record)}
    return {key: value for key, value in values.items() if key in names}
