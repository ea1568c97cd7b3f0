"""Export a sentence-transformers model folder's transformer to ONNX, offline.

Why: on 2 CPU cores ONNX Runtime runs multilingual-e5-small about 2.5x faster per question
than torch (8 ms against 21 ms, the same vectors), and a process that answers questions
then needs neither torch nor transformers: a cold ``qabot ask`` and the bot start in a
fraction of the time and memory (figures in docs/performance.md).

sentence-transformers' own ``backend="onnx"`` exports through ``optimum``, which does not
support the transformers release we use, so the export is done here with torch's
TorchScript-based exporter. The graph takes ``input_ids`` and ``attention_mask`` and returns
``last_hidden_state``; tokenising, pooling and normalising stay as the folder's
sentence-transformers configuration says (see :mod:`index.embedding.onnx_encoder`). The file goes where
sentence-transformers looks for it, ``onnx/model.onnx``, so the folder stays an ordinary
sentence-transformers model.

The word-embedding table (250k rows x 384, 384 MB of the model's 470 MB) is stored in int8
with one scale per tensor; the matrix multiplications stay float32. Measured on the dev
questions: cosine to the float32 vectors ≥ 0.9999 and the same top passage for every
question, with 290 MB less to load (bench/embed_levers.json).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

#: Where the exported model lies inside a sentence-transformers model folder.
ONNX_FILE = Path("onnx") / "model.onnx"
#: ONNX operator set; 17 is supported by every ONNX Runtime release of the last three years.
OPSET = 17


def export_onnx(model_dir: Path) -> Path:
    """Write ``model_dir/onnx/model.onnx`` from the folder's transformer weights; return its path."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = Path(model_dir) / ONNX_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch, _quiet():
        float32 = export_float32(model_dir, Path(scratch) / "float32.onnx")
        quantize_dynamic(
            str(float32), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["Gather"]
        )
    return target


def export_float32(model_dir: Path, target: Path) -> Path:
    """The folder's transformer as a float32 ONNX graph at ``target`` (before quantising;
    bench/embed_levers.py compares other quantisations of it)."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its per-tensor bar is noise in `model prepare`
    model = AutoModel.from_pretrained(
        str(model_dir), attn_implementation="eager", add_pooling_layer=False
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # Two texts of different lengths, so the traced graph has padding and a batch axis.
    sample = tokenizer(["query: a", "passage: a longer sample text"], padding=True, return_tensors="pt")
    with torch.no_grad(), _quiet():
        torch.onnx.export(
            _last_hidden_state(model),
            (sample["input_ids"], sample["attention_mask"]),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                name: {0: "batch", 1: "sequence"}
                for name in ("input_ids", "attention_mask", "last_hidden_state")
            },
            opset_version=OPSET,
            dynamo=False,
        )
    return target


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide the exporter's tracer warnings and the quantizer's advice, logged on the root logger.

    They concern graph shapes and calibration data that this export does not use (the
    output is checked against sentence-transformers in tests/test_embed_backends.py).
    """
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _last_hidden_state(model):
    """The model as a module with plain tensor inputs and output, as the exporter wants."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return LastHiddenState()
