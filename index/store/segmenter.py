"""Chinese words: jieba, with its dictionary memory-mapped from a cache of our own.

jieba segments with a *prefix dictionary*: each of the 349,046 words of its dictionary with
its frequency, and every prefix of a word with 0 (498,113 entries in all). ``jieba.initialize()``
reads it from a marshal cache in the temp folder into a dict: 0.87 s on 2 cores, all of it
holding Python's lock, and 56 MB in every process that segments Chinese. This module keeps
the same entries in a marisa-trie file instead (2.1 MB), which every process maps and checks
in 5-6 ms and shares through the page cache; :class:`WordFrequencies` answers jieba's
lookups from it. The words are exactly jieba's own (tests/test_segmenter.py builds
both and compares them); a lookup costs about twice a dict's, so segmenting takes 12 µs a
character instead of 6 (0.1 ms for a question).

The cache is a trie file and a small JSON record (jieba's total frequency and the trie's
sha256, checked at every load) per user, in a folder only they may write in the temp
folder, named after jieba's version and its dictionary file (path, size, modification
time). A missing, damaged or mismatched one is rebuilt with jieba's own builder (about 2 s,
once) and replaced atomically, so processes starting together never read half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

_jieba = None
_lock = threading.Lock()


def load_segmenter() -> None:
    """Load jieba's dictionary now (mapped from the cache) instead of at the first Chinese text."""
    _segmenter()


def is_loaded() -> bool:
    """Whether this process has loaded the dictionary."""
    return _jieba is not None


def segment(text: str) -> list[str]:
    """The words of ``text`` (a run of Han characters): jieba's accurate mode, with its HMM
    for words not in the dictionary."""
    return _segmenter().lcut(text)


def default_cache_dir() -> Path:
    """``<temp folder>/qabot-<user id>``: jieba keeps its own cache in the temp folder too."""
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"qabot-{user}"


def _segmenter():
    """jieba, its dictionary loaded once per process, quietly (it logs to stderr)."""
    global _jieba
    if _jieba is None:
        with _lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.dt
                with tokenizer.lock:
                    if not tokenizer.initialized:
                        words = prefix_dictionary(tokenizer, default_cache_dir())
                        tokenizer.FREQ, tokenizer.total = words
                        tokenizer.initialized = True
                _jieba = jieba
    return _jieba


class WordFrequencies(Mapping):
    """jieba's prefix dictionary as jieba reads it (``in``, ``[]``, ``get``), answered from a
    memory-mapped marisa-trie: 2.1 MB of shared file pages instead of a 56 MB dict."""

    def __init__(self, trie) -> None:
        self._trie = trie  # a marisa_trie.RecordTrie of (frequency,) records

    def __contains__(self, word: object) -> bool:
        return word in self._trie

    def __getitem__(self, word: str) -> int:
        return self._trie[word][0][0]

    def get(self, word: str, default: int | None = None) -> int | None:
        found = self._trie.get(word)
        return found[0][0] if found else default

    def __iter__(self):
        return iter(self._trie.keys())

    def __len__(self) -> int:
        return len(self._trie)


def prefix_dictionary(tokenizer, cache_dir: Path) -> tuple[Mapping[str, int], int]:
    """``tokenizer``'s prefix dictionary and the sum of its frequencies: mapped from the
    cache in ``cache_dir`` if it has one for this dictionary, else built by jieba and cached
    (jieba's own dict when no cache can be written)."""
    try:
        cache = _cache_file(cache_dir, _dictionary_file(tokenizer)) if _usable(cache_dir) else None
    except OSError:  # jieba's dictionary is not a file of its own (a zipped install): no cache
        cache = None
    if cache is not None and cache.is_file():
        try:
            return _read(cache)
        except (OSError, ValueError, KeyError, RuntimeError):  # marisa says RuntimeError
            pass  # rebuilt below
    words, total = tokenizer.gen_pfdict(tokenizer.get_dict_file())
    if cache is None:
        return words, total
    try:
        _write(cache, words, total)
        return _read(cache)
    except (OSError, ValueError, KeyError, RuntimeError):
        return words, total  # a read-only temp folder: build again next time, as jieba would


def _dictionary_file(tokenizer) -> Path:
    import jieba

    if tokenizer.dictionary == jieba.DEFAULT_DICT:
        return Path(jieba.__file__).parent / jieba.DEFAULT_DICT_NAME
    return Path(tokenizer.dictionary)


def _cache_file(cache_dir: Path, source: Path) -> Path:
    import jieba

    stat = source.stat()
    key = f"{jieba.__version__}\0{source.absolute()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return cache_dir / f"jieba-{hashlib.sha256(key.encode()).hexdigest()[:16]}.marisa"


def _usable(cache_dir: Path) -> bool:
    """Make ``cache_dir`` (mode 0700) if needed; use it only if it is this user's own folder."""
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = cache_dir.stat()
    except OSError:
        return False
    return not hasattr(os, "getuid") or (info.st_uid == os.getuid() and not info.st_mode & 0o022)


def _record(cache: Path) -> Path:
    """The JSON beside the trie: jieba's total frequency, the entry count, the trie's sha256."""
    return cache.with_suffix(".json")


def _read(cache: Path) -> tuple[WordFrequencies, int]:
    import marisa_trie

    record = json.loads(_record(cache).read_text(encoding="utf-8"))
    trie = marisa_trie.RecordTrie("<I")
    trie.mmap(str(cache))
    if hashlib.sha256(cache.read_bytes()).hexdigest() != record["sha256"] or len(trie) != record["entries"]:
        raise ValueError(f"{cache} does not match its record")  # damaged, or being replaced
    return WordFrequencies(trie), int(record["total"])


def _write(cache: Path, words: dict[str, int], total: int) -> None:
    """The trie, then its record, each written whole and renamed into place."""
    import marisa_trie

    trie = marisa_trie.RecordTrie("<I", ((word, (frequency,)) for word, frequency in words.items()))
    data = trie.tobytes()
    _replace(cache, data)
    record = {"total": total, "entries": len(trie), "sha256": hashlib.sha256(data).hexdigest()}
    _replace(_record(cache), json.dumps(record).encode("utf-8"))
    for old in cache.parent.glob("jieba-*.npz"):  # the previous format's caches, 9 MB each
        old.unlink(missing_ok=True)


def _replace(target: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
