"""Load a corpus folder: every article file becomes a Document and its Passages.

One bad file never stops the rest: it is skipped (or read without its metadata) and
named in a warning that the caller can show, e.g. in the bot's /reindex answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from corpus.article import Article, parse_article
from corpus.read import (
    HTML_SUFFIXES,
    MAX_ARTICLE_BYTES,
    UnreadableFile,
    find_article_files,
    find_unreadable_names,
    read_text,
)
from corpus.records import Document, Passage
from corpus.split import split_into_passages
from qabot.errors import CorpusNotFound

log = logging.getLogger(__name__)


@dataclass
class Corpus:
    """Everything loaded from a folder: documents, their passages in order, and warnings.

    Each warning is one line that starts with the file's path inside the folder,
    "bad.txt: not UTF-8 text (...); skipped", ready to show to whoever manages the corpus.
    """

    documents: list[Document]
    passages: list[Passage]
    warnings: list[str]


def load_corpus(folder: Path, max_article_bytes: int = MAX_ARTICLE_BYTES) -> Corpus:
    """Read every .md/.txt/.html/.htm/.pdf file under ``folder`` (hidden files ignored), skipping
    with a warning any larger than ``max_article_bytes``.

    ``doc_id`` is the file name without extension; a second file with the same stem
    is skipped with a warning, because citations must point at one document.
    Raises CorpusNotFound when ``folder`` is not a directory: that is a setting to fix,
    not a bad article.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise CorpusNotFound(
            f"The corpus folder {folder} {what}. Point --corpus (or QABOT_CORPUS_DIR) at a "
            "folder of .md, .txt, .html or .pdf articles."
        )
    corpus = Corpus([], [], [])
    for path in find_unreadable_names(folder):
        _warn(corpus, path.relative_to(folder).as_posix(), (
            "not a regular file (a link to nothing, a named pipe or a device); skipped"
        ))
    seen: dict[str, str] = {}
    for path in find_article_files(folder):
        source_file = path.relative_to(folder).as_posix()
        if path.stem in seen:
            _warn(corpus, source_file, f"same document id {path.stem!r} as {seen[path.stem]}; skipped")
            continue
        seen[path.stem] = source_file
        size = path.stat().st_size
        if size > max_article_bytes:
            _warn(corpus, source_file, (
                f"{size / 1e6:.1f} MB, over the limit of {max_article_bytes / 1e6:g} MB per "
                "article (QABOT_MAX_ARTICLE_MB): split it, or raise the limit; skipped"
            ))
            continue
        _load_file(corpus, path, source_file)
    log.info(
        "corpus %s: %d documents, %d passages, %d warnings",
        folder,
        len(corpus.documents),
        len(corpus.passages),
        len(corpus.warnings),
    )
    return corpus


def _load_file(corpus: Corpus, path: Path, source_file: str) -> None:
    try:
        article = parse_article(read_text(path), html=path.suffix.lower() in HTML_SUFFIXES)
    except UnreadableFile as error:
        _warn(corpus, source_file, f"{error}; skipped")
        return
    for problem in article.problems:
        _warn(corpus, source_file, problem)
    document = _document(article, path.stem, source_file)
    passages = split_into_passages(article.blocks, document.doc_id, document.language)
    if not passages:
        _warn(corpus, source_file, "no article text left after removing markup and boilerplate; skipped")
        return
    corpus.documents.append(document)
    corpus.passages.extend(passages)


def _document(article: Article, doc_id: str, source_file: str) -> Document:
    return Document(
        doc_id=doc_id,
        title=article.title,
        publisher=article.publisher,
        author=article.author,
        date=article.date,
        language=article.language,
        url=article.url,
        source_file=source_file,
    )


def _warn(corpus: Corpus, source_file: str, reason: str) -> None:
    warning = f"{source_file}: {reason}"
    corpus.warnings.append(warning)
    log.info("%s", warning)  # the caller shows corpus.warnings (the CLI, the bot's /reindex)
