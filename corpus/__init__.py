"""The corpus stage: a folder of articles -> documents with metadata + passages to embed.

Where things happen, one module per step:

* ``read``         which files are articles; decoding (bad files are reported here)
* ``front_matter`` the YAML block at the top of .md/.txt files
* ``pdf``          the text layer of a .pdf file, as paragraphs
* ``clean``        HTML and Markdown markup -> paragraph blocks
* ``metadata``     bylines, datelines, credits, page headers, the title line
* ``boilerplate``  site chrome lines that are dropped (add new patterns here)
* ``structure``    which plain lines are headings or photo captions
* ``article``      the pipeline for one article, in order
* ``split``        where a passage is cut (paragraph merging and splitting)
* ``sentences``    sentence boundaries in Chinese and English
* ``tokens``       the cheap token estimate used to size passages
* ``load``         the whole folder, with warnings
* ``import_seeds`` rebuilds the bundled ``articles/`` from the raw seed pages
"""

from corpus.records import Document, Passage
from corpus.sentences import split_sentences
from corpus.tokens import estimate_tokens

__all__ = [
    "Corpus",
    "Document",
    "Passage",
    "estimate_tokens",
    "load_corpus",
    "split_sentences",
]


def __getattr__(name: str):
    """``Corpus`` and ``load_corpus`` on first use: they bring the whole reading pipeline
    (YAML, markup cleaning, boilerplate patterns: 50-130 ms of imports), which answering a
    question never needs, while every question needs ``records`` and ``language``."""
    if name in ("Corpus", "load_corpus"):
        from corpus import load

        return getattr(load, name)
    raise AttributeError(f"module 'corpus' has no attribute {name!r}")
