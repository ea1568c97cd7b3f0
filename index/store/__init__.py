"""Where an index is kept on disk: immutable generations behind a ``CURRENT`` pointer.

* ``generations`` writing a generation atomically, loading and checking it
* ``pointer``     ``CURRENT``: which generation is active (read without importing FAISS)
* ``manifest``    what a generation records about itself (model, corpus, checksums), typed
* ``vectors``     the FAISS index of passage vectors and its per-language filters
* ``lexical``     the BM25 side (bm25s, jieba for Chinese): tokens, scores, word coverage
* ``segmenter``   Chinese words: jieba, its dictionary loaded from a cache of our own
"""
