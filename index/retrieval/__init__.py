"""Where passages are retrieved for a question and the answer is decided.

* ``engine``     :class:`Engine`: a loaded model and index; ``ask`` and ``search``
* ``fusion``     the hybrid's scoring: dense, sentence and BM25 signals, per-language pools,
                 evidence against the index's null, confidence
* ``candidates`` large indexes: score FAISS's and BM25's candidates, whole-pool statistics
* ``highlight``  which sentence of the best passage is shown in bold
"""

#: How passages can be ranked (``QABOT_RETRIEVER``); here, not in ``engine``, so that reading
#: the settings does not import FAISS.
RETRIEVERS = ("hybrid", "dense", "lexical")
