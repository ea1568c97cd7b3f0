#!/usr/bin/env python
"""Screenshots of real answers as Telegram shows them, for the README and docs/bot.md.

Each question is asked of the bundled index; the HTML the bot would send (``render_page``)
and its buttons (``keyboard``) go into a mock of a Telegram chat bubble (expandable
blockquote folded to three lines, as the apps show it), which headless Chromium renders
to a PNG. Needs Debian's ``chromium`` (and ``fonts-noto-cjk`` for Chinese).

    .venv/bin/python bench/reply_screenshot.py        # writes docs/images/reply-*.png
"""

from __future__ import annotations

import argparse
import html
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = {
    "reply-zh": "西南铝扩产计划投资多少美元？",
    "reply-en": "What industrial clusters are planned in the middle reaches of the Yangtze River?",
}

PAGE = """<!doctype html><meta charset="utf-8"><style>
body {{ margin: 0; background: #8fb48a; font: 15px/1.4 "Noto Sans", "Noto Sans CJK SC", sans-serif; }}
.chat {{ padding: 16px; width: 420px; }}
.mine {{ margin-left: auto; width: fit-content; max-width: 300px; background: #e1fec6;
  border-radius: 12px; padding: 6px 10px; margin-bottom: 8px; }}
.bubble {{ background: #fff; border-radius: 12px; padding: 8px 10px; white-space: pre-wrap; }}
blockquote {{ margin: 6px 0 0; padding: 2px 8px; border-left: 3px solid #3390ec;
  background: #eef6fd; border-radius: 4px; }}
blockquote[expandable] {{ max-height: 4.2em; overflow: hidden; position: relative; }}
blockquote[expandable]::after {{ content: "⌄"; position: absolute; right: 6px; bottom: 0;
  color: #3390ec; background: #eef6fd; padding-left: 4px; }}
a {{ color: #168acd; text-decoration: none; }}
.buttons {{ display: flex; gap: 4px; margin-top: 4px; }}
.buttons div {{ flex: 1; text-align: center; background: rgba(0,0,0,.25); color: #fff;
  border-radius: 8px; padding: 7px 0; font-weight: 500; }}
</style><div class="chat"><div class="mine">{question}</div>
<div class="bubble">{answer}</div><div class="buttons">{buttons}</div></div>"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        parser.error("needs Chromium: apt-get install chromium fonts-noto-cjk")

    from bot.i18n import choose_language
    from bot.paging import keyboard
    from bot.render import page_count, render_page
    from qabot.engine import load_engine
    from qabot.settings import Settings

    engine = load_engine(Settings.from_env())
    args.out.mkdir(parents=True, exist_ok=True)
    for name, question in QUESTIONS.items():
        lang = choose_language(None, question)
        result = engine.ask(question, 9)
        hits = tuple(result.hits)
        markup = keyboard(0, "k" if page_count(hits) > 1 else None, 0, page_count(hits), lang, 1)
        labels = [b.text for row in markup.inline_keyboard for b in row] if markup else []
        page = PAGE.format(
            question=html.escape(question),
            answer=render_page(hits, 0, lang, engine.min_score),
            buttons="".join(f"<div>{html.escape(label)}</div>" for label in labels),
        )
        with tempfile.TemporaryDirectory() as folder:
            mock = Path(folder) / "reply.html"
            mock.write_text(page, encoding="utf-8")
            target = args.out / f"{name}.png"
            subprocess.run(
                [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--screenshot={target}", "--window-size=452,560", mock.as_uri()],
                check=True, capture_output=True, timeout=120,
            )
        print(f"{target.relative_to(REPO)}: confidence {result.confidence:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
