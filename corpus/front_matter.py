"""The YAML block between ``---`` lines at the top of a Markdown/text article.

Keys read: title, source or publisher, author, date, language (or lang), url; others
are ignored. Broken front matter costs the file its metadata, never its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

_OPENING = re.compile(r"\A[\ufeff\s]*---[ \t]*\n")
_CLOSING = re.compile(r"^(?:---|\.\.\.)[ \t]*$\n?", re.MULTILINE)
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")


@dataclass
class FrontMatter:
    """The metadata (keys in lower case), the text after it, and what was wrong with it."""

    fields: dict[str, object]
    body: str
    problems: list[str] = field(default_factory=list)


def split_front_matter(text: str) -> FrontMatter:
    """Separate a leading ``---`` YAML block from the body; text without one is all body.

    A block that is never closed is read up to the first blank line (the usual slip is
    a forgotten closing ``---``); YAML that does not parse is reported and skipped.
    """
    opening = _OPENING.match(text)
    if not opening:
        return FrontMatter({}, text)
    problems = []
    closing = _CLOSING.search(text, opening.end())
    if closing:
        header, body = text[opening.end() : closing.start()], text[closing.end() :]
    else:
        problems.append("front matter has no closing '---' line; read it up to the first blank line")
        blank = _BLANK_LINE.search(text, opening.end())
        header = text[opening.end() : blank.start()] if blank else text[opening.end() :]
        body = text[blank.end() :] if blank else ""
    first_line = text.count("\n", 0, opening.end()) + 1
    fields, problem = _parse_yaml(header, first_line)
    return FrontMatter(fields, body, problems + ([problem] if problem else []))


def _parse_yaml(header: str, first_line: int) -> tuple[dict[str, object], str]:
    """The YAML mapping in ``header`` (keys lower-cased), or {} and the reason it is unusable."""
    try:
        data = yaml.safe_load(header)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {first_line + mark.line}" if mark else ""
        reason = getattr(error, "problem", None) or "unreadable"
        return {}, f"front matter is not valid YAML ({reason}{where}); its metadata is ignored"
    if data is None:
        return {}, ""
    if not isinstance(data, dict):
        return {}, "front matter is not a set of 'key: value' lines; its metadata is ignored"
    return {str(key).strip().lower(): value for key, value in data.items()}, ""
