"""Run a sentence-transformers model folder's ONNX export without torch.

A sentence-transformers model is a pipeline written down in its folder: ``modules.json``
(Transformer → Pooling → Normalize), the prompts in ``config_sentence_transformers.json``,
``max_seq_length`` in ``sentence_bert_config.json`` and the pooling mode in
``1_Pooling/config.json``. :class:`OnnxEncoder` follows that same description with
``tokenizers`` and ONNX Runtime, so a process that only embeds questions never imports
torch, transformers or sentence-transformers (about 5 s and 400 MB less at start).

Only the pipeline above with mean pooling is supported; :func:`onnx_pipeline` says whether a
folder has it, and anything else goes through sentence-transformers (see :mod:`index.embedding.embedder`).
Vectors match sentence-transformers' own to a cosine of 0.9999 (tests/test_embed_backends.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.embedding.onnx_export import ONNX_FILE

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
        from tokenizers import Tokenizer

        self.pipeline = pipeline
        self.dimension = pipeline.dimension
        options = onnxruntime.SessionOptions()
        # Every core (up to 4) for one question: on 2 cores 8 ms against 14 ms on one thread.
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        options.inter_op_num_threads = 1
        # The session first: loading it briefly needs ~80 MB more than it keeps, and the
        # tokenizer (~290 MB for XLM-R's 250k pieces) loaded before would add to that peak.
        self._session = onnxruntime.InferenceSession(
            str(pipeline.model_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(pipeline.model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(pipeline.max_seq_length)

    def encode(self, texts: Sequence[str], prompt_name: str) -> np.ndarray:
        """L2-normalised float32 vectors, the model's ``prompt_name`` prompt put before each text.

        One text per forward pass: on CPU, padding a batch to its longest text costs more
        than batching saves. Building the bundled corpus's 203 texts ran at 44 texts/s one
        at a time, 41 in batches of 4, 37 of 8 and 22 of 32; batches of 32 also needed
        376 MB more memory, which ONNX Runtime keeps (a bot that rebuilt its index would).
        """
        prompt = self.pipeline.prompts.get(prompt_name, "")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for row, encoding in enumerate(self._tokenizer.encode_batch([prompt + t for t in texts])):
            ids = np.asarray([encoding.ids], dtype=np.int64)
            (hidden,) = self._session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
            pooled = hidden[0].mean(axis=0)  # no padding: every token counts
            vectors[row] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return vectors


def _module_path(folder: Path, index: int) -> str:
    return _json(folder / "modules.json")[index]["path"]


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))
