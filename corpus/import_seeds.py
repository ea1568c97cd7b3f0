"""Rebuild the bundled corpus (``corpus/articles/*.md``) from the raw seed pages.

    python -m corpus.import_seeds SEEDS_DIR OUT_DIR

Each seed is cleaned by the same code the loader uses (:func:`corpus.article.parse_article`),
then the few facts the generic rules cannot know are added from the seed's own text
(see ``SEEDS``), and the result is written as Markdown: YAML front matter, then the
paragraphs separated by blank lines, headings as ``## ...`` and photo captions as
``*...*`` so the loader keeps them as context. Nothing is invented: a field the text
does not give stays empty.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from corpus.article import Article, parse_article
from corpus.clean import CAPTION, HEADING, Block
from corpus.read import read_text


@dataclass(frozen=True)
class Seed:
    """How one raw seed becomes a bundled article."""

    slug: str  # the bundled file's name, hence the doc_id
    #: lines the generic rules read as text but that are photo captions on the page
    captions: tuple[str, ...] = ()
    #: reads metadata that only this page's layout reveals: (raw text, article) -> fields
    extract: Callable[[str, Article], dict[str, str]] = field(default=lambda raw, article: {})


def _sina_finance(raw: str, article: Article) -> dict[str, str]:
    """Sina Finance reprint: the front matter's "author" is the site, and its title has
    "_965_" where the page's "原标题" (original title) line has “965”; the reporters are
    named in the closing "（作者：...）" credit."""
    return {
        "title": re.search(r"原标题：(.+?)</p>", raw)[1],
        "publisher": article.author,
        "author": re.search(r"（作者：(.+?)）", raw)[1],
    }


SEEDS = {
    "000_8f1471f55a3e2867.txt": Seed(
        "wuhan-hydrogen-capital-qingshan",
        captions=(
            "Liu Fu Tang, deputy party secretary and governor of Qingshan District.",
            "Warden of\xa0Qingshan district",
        ),
    ),
    "001_73fb2b42e3148d8e.txt": Seed("wuhan-965-clusters-hanyang-wuchang-qingshan", extract=_sina_finance),
    "002_002c5586f1920877.txt": Seed("qingshan-industry-breakthrough"),
    "003_64b3a3d2f97f6a63.txt": Seed("jiulongpo-western-hydrogen-valley"),
    "004_513aef5028e67c49.txt": Seed("yangtze-middle-reaches-industrial-clusters"),
}


def import_seed(path: Path, seed: Seed) -> str:
    """The bundled Markdown for one raw seed file."""
    raw = read_text(path)
    article = parse_article(raw)
    article = replace(article, **seed.extract(raw, article))
    blocks = [Block(b.text, CAPTION) if b.text in seed.captions else b for b in article.blocks]
    front = {
        "title": article.title,
        "publisher": article.publisher,
        "author": article.author,
        "date": article.date,
        "language": article.language,
        "url": article.url,
        "source_file": path.name,
    }
    header = yaml.safe_dump(front, allow_unicode=True, sort_keys=False, width=1000)
    return f"---\n{header}---\n\n" + "\n\n".join(_markdown(block) for block in blocks) + "\n"


def _markdown(block: Block) -> str:
    if block.kind == HEADING:
        return f"## {block.text}"
    if block.kind == CAPTION:
        return f"*{block.text}*"
    return block.text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seeds_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    missing = [name for name in SEEDS if not (args.seeds_dir / name).is_file()]
    if missing:
        print(f"missing seed files in {args.seeds_dir}: {', '.join(missing)}", file=sys.stderr)
        return 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, seed in SEEDS.items():
        target = args.out_dir / f"{seed.slug}.md"
        target.write_text(import_seed(args.seeds_dir / name, seed), encoding="utf-8")
        print(f"{name} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
