"""The index stage: passages in, vectors stored, answers out.

* ``build``       a corpus folder -> passages -> vectors -> a new stored generation
* ``calibration`` what unrelated questions score on a new generation (its null)
* ``embedding/``  the model: passages and questions -> vectors
* ``store/``      generations on disk: FAISS vectors, BM25, manifest
* ``retrieval/``  the engine: a question -> the best passages, or a decline
"""
