"""Inline mode: ``@yourbot question`` in any chat shows up to five answers to pick from.

Each result is one passage: its article as the title, its answering sentence as the
description, and, once picked, the formatted answer with its citation as the message. A
question the articles do not cover shows one result saying so. Telegram sends a query per
keystroke, so a query waits :data:`DEBOUNCE_SECONDS` and is dropped if the same person typed
on; answers are cached by Telegram for :data:`CACHE_SECONDS`. Enable it in BotFather with
``/setinline`` (docs/bot.md).
"""

from __future__ import annotations

import asyncio

from telegram import InlineQueryResultArticle, InputTextMessageContent, Update
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot.i18n import choose_language, plain
from bot.render import answering_sentence, render_decline, render_page, shorten
from bot.state import state_of
from corpus.clean import strip_invisible

#: Results offered per query.
RESULTS = 5
#: How long a query waits for the next keystroke before it is answered.
DEBOUNCE_SECONDS = 0.4
#: How long Telegram may show the same results for the same query text.
CACHE_SECONDS = 60
#: Longest inline question answered (Telegram allows 256 characters).
MAX_QUERY = 256


async def inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer an inline query with the best passages, or one "no good match" result."""
    query = update.inline_query
    question = strip_invisible(query.query).strip()[:MAX_QUERY]
    if not question:
        await query.answer([], cache_time=CACHE_SECONDS)
        return
    state = state_of(context)
    user_id = query.from_user.id
    state.inline_latest[user_id] = query.id
    await asyncio.sleep(DEBOUNCE_SECONDS)
    if state.inline_latest.get(user_id) != query.id:
        return  # the person typed on; Telegram has already dropped this query
    state.inline_latest.pop(user_id, None)
    lang = choose_language(query.from_user.language_code, question)
    answer = await state.ask(question, RESULTS)
    if not answer.answered:
        decline = render_decline(answer.nearest, lang)
        results = [_article("decline", plain("inline_no_match", lang), "", decline)]
    else:
        results = [
            _article(
                str(hit.row),
                hit.document.title or hit.document.doc_id,
                answering_sentence(hit),
                render_page([hit], 0, lang),
            )
            for hit in answer.hits
        ]
    await query.answer(results, cache_time=CACHE_SECONDS)


def _article(result_id: str, title: str, description: str, message: str) -> InlineQueryResultArticle:
    return InlineQueryResultArticle(
        id=result_id,
        title=shorten(title, 100)[0],
        description=shorten(" ".join(description.split()), 150)[0] or None,
        input_message_content=InputTextMessageContent(message, parse_mode=ParseMode.HTML),
    )
