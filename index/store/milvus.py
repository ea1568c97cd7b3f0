"""Passage and sentence vectors in Milvus instead of the generation folder
(``QABOT_VECTOR_STORE=milvus://host:port[/name]``), for corpora whose vectors outgrow the
memory of the machines the bot runs on.

What moves: the vectors, 85 % of an index (at 100k passages: 155 MB of passage vectors and
717 MB of sentence vectors, against 163 MB for everything else). What stays in the folder,
read as before: passages and their metadata, sentence spans, the BM25 index and the
manifest. BM25 stays because the hybrid's calibrated fusion reads it whole: every
passage's score in a language pool (the pool's mean and spread are features the decision
was fitted on) and the IDF-weighted coverage of the question's words. Milvus's own BM25
search returns a top-k only; fusing with it would be another model, to fit and check again.
The passages stay with it: the engine holds them in memory (every passage's language for
the pools, texts for highlights and replies) and BM25 is built over them; in Milvus they
would be a second copy, read whole at every start.

Each generation gets its own two collections, named after it
(``<name>_<generation>_passages``: row, language, vector; ``…_sentences``: row, passage,
vector). A build uploads them before the folder's ``CURRENT`` names the generation, so a
bot never loads a generation whose vectors are not complete; the alias ``<name>_passages``
(and ``…_sentences``) then points at the new collections for anyone looking at Milvus, and
collections of generations no longer in the folder are dropped.

Search is exact (``FLAT``, inner product: cosine on normalised vectors), so retrieval is
the same as the FAISS folder's below 20,000 passages and closer to exact above. The
classes here give the engine the few operations it uses of a FAISS index and of the
sentence vector array; see :class:`MilvusVectorIndex`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import numpy as np

from qabot.errors import QabotError

#: Rows per insert call (gRPC messages stay far below Milvus's 64 MB limit: ~3 MB at 384
#: dimensions).
INSERT_BATCH = 2000
#: Rows per query call when fetching vectors by row.
FETCH_BATCH = 4096
#: gRPC keepalive pings only while a call is running. pymilvus pings every 10 s even when
#: idle; a server with gRPC's default policy (milvus-lite's) counts those as abuse and
#: closes the connection ("GOAWAY too_many_pings"), after which pymilvus failed to
#: reconnect: bench/milvus.py lost its connection twice, minutes into a run.
GRPC_OPTIONS = {"grpc.keepalive_permit_without_calls": False, "grpc.keepalive_time_ms": 60_000}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class MilvusStore:
    """A Milvus server holding the vectors of one bot's index generations."""

    def __init__(self, address: str) -> None:
        """``address``: ``milvus://host:port[/name]``; ``name`` (default ``qabot``) prefixes
        every collection, so several bots can share one Milvus."""
        parts = urlsplit(address)
        name = parts.path.strip("/") or "qabot"
        if parts.scheme != "milvus" or not parts.hostname or not _NAME.fullmatch(name):
            raise QabotError(
                f"QABOT_VECTOR_STORE must look like milvus://host:19530 or milvus://host:19530/name "
                f"(a name of letters, digits and _), not {address!r}."
            )
        self.address = address
        self.name = name
        self._uri = f"http://{parts.hostname}:{parts.port or 19530}"
        self._client = None

    @property
    def client(self):
        """The pymilvus client, connected on first use (imported then: only Milvus users
        pay for pymilvus)."""
        if self._client is None:
            from pymilvus import MilvusClient

            try:
                self._client = MilvusClient(uri=self._uri, timeout=30, grpc_options=GRPC_OPTIONS)
            except Exception as exc:  # pymilvus raises its own MilvusException and gRPC's
                raise QabotError(
                    f"Cannot reach Milvus at {self._uri} ({exc}). Check QABOT_VECTOR_STORE "
                    "and that Milvus is running."
                ) from None
        return self._client

    def collections(self, generation: str) -> tuple[str, str]:
        """The passage and sentence collections of ``generation``."""
        base = f"{self.name}_{generation.replace('-', '_')}"
        return f"{base}_passages", f"{base}_sentences"

    def upload(
        self, generation: str, vectors: np.ndarray, languages: list[str],
        sentence_vectors: np.ndarray, sentence_owner: np.ndarray,
    ) -> None:
        """Write ``generation``'s vectors into two new collections and load them."""
        from pymilvus import DataType

        passages, sentences = self.collections(generation)
        dimension = int(vectors.shape[1])
        for collection, extra in ((passages, ("language", DataType.VARCHAR)),
                                  (sentences, ("passage", DataType.INT64))):
            schema = self.client.create_schema(auto_id=False)
            schema.add_field("row", DataType.INT64, is_primary=True)
            if extra[1] == DataType.VARCHAR:
                schema.add_field(extra[0], extra[1], max_length=16)
            else:
                schema.add_field(extra[0], extra[1])
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
            index = self.client.prepare_index_params()
            index.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
            if self.client.has_collection(collection):  # left by a build that was killed
                self.client.drop_collection(collection)
            self.client.create_collection(collection, schema=schema, index_params=index)
        self._insert(passages, vectors, "language", languages)
        self._insert(sentences, sentence_vectors, "passage", sentence_owner.tolist())
        for collection in (passages, sentences):
            self.client.flush(collection)
            self.client.load_collection(collection)

    def _insert(self, collection: str, vectors: np.ndarray, field: str, values: list) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        for start in range(0, len(vectors), INSERT_BATCH):
            end = min(start + INSERT_BATCH, len(vectors))
            self.client.insert(collection, [
                {"row": row, field: values[row], "vector": vectors[row].tolist()}
                for row in range(start, end)
            ])

    def activate(self, generation: str, keep: set[str]) -> None:
        """Point the aliases at ``generation`` and drop the collections of generations that
        are not in ``keep`` (those still in the index folder)."""
        prefix = re.compile(rf"{re.escape(self.name)}_gen_\w+_(passages|sentences)")
        ours = [name for name in self.client.list_collections() if prefix.fullmatch(name)]
        existing = {alias for name in ours for alias in self.client.list_aliases(name)["aliases"]}
        for alias, collection in zip(("passages", "sentences"), self.collections(generation)):
            alias = f"{self.name}_{alias}"
            if alias in existing:
                self.client.alter_alias(collection, alias)
            else:
                self.client.create_alias(collection, alias)
        wanted = {name for g in keep | {generation} for name in self.collections(g)}
        for collection in ours:
            if collection not in wanted:
                self.client.drop_collection(collection)

    def open(self, generation: str) -> tuple["MilvusVectorIndex", "MilvusRows"]:
        """The generation's passage vectors and sentence vectors, read from Milvus."""
        passages, sentence_collection = self.collections(generation)
        for collection in (passages, sentence_collection):
            if not self.client.has_collection(collection):
                raise QabotError(
                    f"Milvus at {self._uri} has no collection {collection} for the index "
                    f"generation {generation}: rebuild the index (`qabot index build`)."
                )
            self.client.load_collection(collection)
        index = MilvusVectorIndex(self.client, passages)
        return index, MilvusRows(self.client, sentence_collection, index.d)


class MilvusVectorIndex:
    """The passage vectors of one generation in Milvus, with the operations of a FAISS
    index that the engine uses (``ntotal``, ``d``, ``search``, ``reconstruct_batch``,
    ``reconstruct_n``), and a language-restricted search."""

    def __init__(self, client, collection: str) -> None:
        self._client = client
        self.collection = collection
        self.ntotal = _row_count(client, collection)
        self.d = _dimension(client, collection)

    def search(self, queries: np.ndarray, k: int, language: str | None = None):
        """Scores and rows of the ``k`` nearest passages (FAISS's shapes: one row per query,
        -1 rows when there are fewer)."""
        where = f'language == "{language}"' if language else ""
        found = self._client.search(
            self.collection, data=[q.tolist() for q in queries], limit=k, filter=where,
            output_fields=[], search_params={"metric_type": "IP"}, anns_field="vector",
        )
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        for i, hits in enumerate(found):
            for j, hit in enumerate(hits):
                scores[i, j], rows[i, j] = hit["distance"], hit["row"]
        return scores, rows

    def reconstruct_batch(self, rows: np.ndarray) -> np.ndarray:
        return _fetch(self._client, self.collection, np.asarray(rows, dtype=np.int64), self.d)

    def reconstruct_n(self, start: int, count: int) -> np.ndarray:
        return self.reconstruct_batch(np.arange(start, start + count))


class MilvusRows:
    """Sentence vectors in Milvus, read by row like the memory-mapped array they replace:
    ``rows[int array]`` or ``rows[start:end]``."""

    def __init__(self, client, collection: str, dimension: int) -> None:
        self._client = client
        self.collection = collection
        self.shape = (_row_count(client, collection), dimension)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(self.shape[0]))
        return _fetch(self._client, self.collection, np.asarray(rows, dtype=np.int64), self.shape[1])


class MilvusPassageVectors:
    """:class:`index.store.vectors.PassageVectors` for vectors in Milvus: the nearest
    passages among all, or among one language's (a filter on the language field)."""

    def __init__(self, index: MilvusVectorIndex, languages: np.ndarray) -> None:
        self.index = index
        self.ids_by_language = {
            lang: np.flatnonzero(languages == lang).astype(np.int64)
            for lang in dict.fromkeys(languages.tolist())
        }

    def nearest(
        self, query: np.ndarray, k: int, language: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.index.ntotal)
        if language and language not in self.ids_by_language:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        scores, rows = self.index.search(query[None, :], k, language)
        return scores[0], rows[0]


def _fetch(client, collection: str, rows: np.ndarray, dimension: int) -> np.ndarray:
    """The vectors of ``rows``, in that order."""
    out = np.empty((len(rows), dimension), dtype=np.float32)
    if not len(rows):
        return out
    unique, where = np.unique(rows, return_inverse=True)
    found = np.empty((len(unique), dimension), dtype=np.float32)
    position = {int(row): i for i, row in enumerate(unique)}
    for start in range(0, len(unique), FETCH_BATCH):
        batch = unique[start : start + FETCH_BATCH].tolist()
        for record in client.query(collection, ids=batch, output_fields=["vector"]):
            found[position[int(record["row"])]] = record["vector"]
    out[:] = found[where]
    return out


def _row_count(client, collection: str) -> int:
    return int(client.get_collection_stats(collection)["row_count"])


def _dimension(client, collection: str) -> int:
    for field in client.describe_collection(collection)["fields"]:
        if field["name"] == "vector":
            return int(field["params"]["dim"])
    raise QabotError(f"Milvus collection {collection} has no vector field")
