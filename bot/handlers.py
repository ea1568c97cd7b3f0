"""The bot's conversation: one small handler per kind of update, as registered in ``bot.app``.

Private chats: every text is a question. Groups: only ``/ask``, mentions of the bot and
replies to it are questions; other chatter gets no answer at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from sqlalchemy.exc import SQLAlchemyError
from telegram import Bot, Message, MessageEntity, Update
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest, NetworkError, TelegramError
from telegram.ext import ContextTypes

from bot.fairness import Turn
from bot.feedback import Vote
from bot.followup import continued
from bot.i18n import Lang, choose_language, plain, text
from bot.network import TokenRejected
from bot.paging import keyboard, parse_callback, parse_vote
from bot.render import (
    PAGE_SIZE,
    page_count,
    render_decline,
    render_page,
    render_sources,
    render_stats,
)
from bot.state import BotState, state_of
from corpus.clean import strip_invisible
from corpus.language import detect_language
from index.retrieval.engine import Answer

log = logging.getLogger(__name__)

#: Longest question accepted, in characters; longer text is rarely a question.
MAX_QUESTION = 1000
#: Seconds an answer may take before "typing…" is shown. A warm answer takes ~10 ms, so
#: it is rarely sent: Telegram counts each one like a message against the bot's 30
#: requests a second and a group's 20 a minute, and the answer used to wait for it.
TYPING_AFTER = 1.0
#: Hits fetched per question: the answer page plus two pages behind "More".
TOP_K = PAGE_SIZE * 3


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/start`` and ``/help``: what the bot knows and how to ask, in private and groups."""
    lang = _language(update)
    articles = len(state_of(context).engine.documents)
    await update.effective_message.reply_html(
        text("help", lang, articles=articles, mention=f"@{context.bot.username}")
    )


async def sources(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/sources``: every indexed article with its publisher and date."""
    lang = _language(update)
    for part in render_sources(state_of(context).engine.documents, lang):
        await update.effective_message.reply_html(part)


async def ask_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/ask <question>`` (also ``/ask@botname``), the way to ask in groups."""
    message = update.effective_message
    parts = message.text.split(maxsplit=1)
    if len(parts) < 2:
        await message.reply_html(text("ask_usage", _language(update)))
        return
    await answer(update, context, parts[1])


async def private_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any text in a private chat is a question."""
    await answer(update, context, update.effective_message.text)


async def group_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Text in a group: answer it only if it mentions the bot or replies to it."""
    question = _addressed_question(update.effective_message, context.bot)
    if question is not None:
        await answer(update, context, question)


async def not_text(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, photos, voice and the like in a private chat: ask for text instead."""
    await update.effective_message.reply_html(text("not_text", _language(update)))


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command the bot doesn't have; in groups only if it was addressed to this bot."""
    message = update.effective_message
    words = (message.text or "").split(maxsplit=1)
    _, _, target = (words[0] if words else "").partition("@")
    if message.chat.type != ChatType.PRIVATE and target.lower() != context.bot.username.lower():
        return
    await message.reply_html(text("unknown_command", _language(update)))


async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE, question: str) -> None:
    """Search the articles and reply with the best passages, or say plainly that none fit."""
    message = update.effective_message
    question = strip_invisible(question).strip()  # zero-width spaces alone are no question
    lang = _language(update, question)
    if not question:
        await message.reply_html(text("empty", lang))
        return
    if len(question) > MAX_QUESTION:
        await message.reply_html(text("too_long", lang, length=len(question), limit=MAX_QUESTION))
        return
    state = state_of(context)
    if not await _may_ask(update, state, lang):
        return
    engine = state.engine  # the one that answers, even if a rebuild is swapped in meanwhile
    asking = state.ask(question, TOP_K, _continued_article(state, message, question, context.bot))
    result = await _typing_if_slow(message, asyncio.ensure_future(asking))
    question_id = _log_question(state, message, result, lang, engine.generation)
    if not result.answered:
        await message.reply_html(render_decline(result.nearest, lang))
        return
    hits = tuple(result.hits)
    sent = await message.reply_html(
        render_page(hits, 0, lang, engine.min_score),
        reply_markup=keyboard(question_id, 0, page_count(hits), lang),
    )
    if question_id is not None:
        with contextlib.suppress(SQLAlchemyError):  # only follow-ups by reply would miss it
            state.feedback.sent_as(question_id, sent.message_id)


async def _typing_if_slow(message: Message, asking: asyncio.Future[Answer]) -> Answer:
    """The answer, with "typing…" shown first if it takes more than :data:`TYPING_AFTER`."""
    try:
        done, _ = await asyncio.wait({asking}, timeout=TYPING_AFTER)
        if not done:
            with contextlib.suppress(TelegramError):  # a courtesy, not worth failing over
                await message.reply_chat_action(ChatAction.TYPING)
        return await asking
    finally:
        asking.cancel()  # nothing once answered; if this update is cancelled, the search too


def _continued_article(state: BotState, message: Message, question: str, bot: Bot) -> str | None:
    """The article this question follows up (bot.followup); None if it stands alone, or if
    the question log cannot be read (then it is answered on its own)."""
    try:
        return continued(
            state.feedback, message.chat_id, question,
            private=message.chat.type == ChatType.PRIVATE,
            replied_to=message.reply_to_message.message_id if _replies_to_bot(message, bot) else None,
        )
    except SQLAlchemyError as exc:
        log.error("Could not read the question log for a follow-up: %s", exc)
        return None


async def _may_ask(update: Update, state: BotState, lang: Lang) -> bool:
    """Whether this user's question is answered now (bot.fairness); says so once if not."""
    user = update.effective_user
    turn = state.limiter.turn(user.id) if user else Turn.ANSWER
    if turn is Turn.SLOW_DOWN:
        limiter = state.limiter
        await update.effective_message.reply_html(
            text("slow_down", lang, limit=limiter.limit, window=round(limiter.window),
                 seconds=limiter.wait_seconds(user.id))
        )
    return turn is Turn.ANSWER


def _log_question(
    state: BotState, message: Message, result: Answer, lang: Lang, generation: str
) -> int | None:
    """The question in the question log (its id for the answer's buttons), or None if the
    log cannot be written: the answer goes out all the same, without buttons."""
    try:
        return state.feedback.record(
            message.chat_id, message.chat.type, detect_language(result.question), result,
            reply_language=lang, generation=generation,
        )
    except SQLAlchemyError as exc:
        log.error("Could not log a question in the bot's database: %s", exc)
        return None


async def turn_page(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A "More"/"Back" press: show that page by editing the answer in place."""
    query = update.callback_query
    state = state_of(context)
    request = parse_callback(query.data)
    lang = choose_language(query.from_user.language_code)
    stored = state.feedback.answer(request.question_id) if request else None
    if stored is None or request.page >= page_count(stored.results):
        await query.answer(plain("expired", lang))
        return
    if query.message is None or query.message.chat.id != stored.chat_id:
        # An answer given in one chat, pressed from another (or an inline message): refuse.
        await query.answer(plain("foreign_button", lang), show_alert=True)
        return
    engine = state.engine
    if stored.generation != engine.generation:  # its rows belong to an index since rebuilt
        await query.answer(plain("stale", lang))
        return
    await query.answer()
    hits = [engine.hit(row, score, highlight) for row, score, highlight in stored.results]
    markup = keyboard(request.question_id, request.page, page_count(hits), stored.language)
    try:
        await query.edit_message_text(
            render_page(hits, request.page, stored.language, engine.min_score),
            reply_markup=markup,
        )
    except BadRequest as exc:
        if "not modified" not in exc.message:  # a double tap shows the same page again
            raise


async def vote(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A 👍/👎 press: one vote per user per answer, changeable; acknowledged in the button's
    own answer, never with a new message."""
    query = update.callback_query
    lang = choose_language(query.from_user.language_code)
    question_id, value = parse_vote(query.data)
    chat_id = query.message.chat.id if query.message else 0  # inline messages have none
    outcome = state_of(context).feedback.vote(question_id, chat_id, query.from_user.id, value)
    if outcome is Vote.FOREIGN:
        await query.answer(plain("foreign_button", lang), show_alert=True)
    elif outcome is Vote.UNKNOWN:
        await query.answer(plain("expired", lang))
    else:
        await query.answer(plain(f"vote_{outcome.value}", lang))


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/stats`` for admins: questions asked, share answered, what is asked and not
    answered, and the answers voted down with their passages."""
    state = state_of(context)
    lang = _language(update)
    user = update.effective_user
    if not state.is_admin(user):
        await update.effective_message.reply_html(text("stats_admin_only", lang))
        return
    titles = {document.doc_id: document.title for document in state.engine.documents}
    await update.effective_message.reply_html(
        render_stats(state.feedback.stats(), lang, titles)
    )


async def unknown_button(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
    """A button press this bot did not make (forged data, another bot's game): answer it,
    so the client's spinner stops, and do nothing else."""
    query = update.callback_query
    await query.answer(plain("expired", choose_language(query.from_user.language_code)))


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log what failed with enough context to debug it, and tell the user. Polling's own
    network trouble (no update) is one line each: the loop retries by itself."""
    error = context.error
    if isinstance(error, TokenRejected):  # the bot is stopping; `qabot run` says why
        return
    if update is None and isinstance(error, NetworkError):
        log.warning("Fetching updates failed (%s); retrying", error)
        return
    if isinstance(error, NetworkError) and not isinstance(error, BadRequest):
        # Telegram could not be reached, or a send broke off after it may have been
        # delivered (bot/network.py): an apology could arrive after the answer itself.
        log.warning("Telegram did not confirm a reply for %s (%s)", _describe(update), error)
        return
    log.error("Failed to handle %s", _describe(update), exc_info=error)
    state_of(context).metrics.errors.inc()
    if not isinstance(update, Update) or update.effective_message is None:
        return
    lang = _language(update)
    if update.callback_query:
        with contextlib.suppress(TelegramError):
            await update.callback_query.answer(plain("error", lang), show_alert=True)
            return
    with contextlib.suppress(TelegramError):
        await update.effective_message.reply_html(text("error", lang))


def _addressed_question(message: Message, bot: Bot) -> str | None:
    """The question in a group message meant for the bot, or None for chatter."""
    mention = f"@{bot.username}".lower()
    if any(found.lower() == mention for found in _mentions(message)):
        return re.sub(re.escape(mention), " ", message.text, flags=re.IGNORECASE)
    if _replies_to_bot(message, bot):
        return message.text
    return None


def _mentions(message: Message) -> list[str]:
    """The @mentions in ``message``'s text. Telegram counts entity offsets in UTF-16 units;
    a lone surrogate (half an emoji, from a client that cut a text) is one unit too, which
    python-telegram-bot's ``parse_entities`` cannot encode: it raised on such a text."""
    units = message.text.encode("utf-16-le", "surrogatepass")
    return [
        units[2 * e.offset : 2 * (e.offset + e.length)].decode("utf-16-le", "surrogatepass")
        for e in message.entities
        if e.type == MessageEntity.MENTION
    ]


def _replies_to_bot(message: Message, bot: Bot) -> bool:
    replied = message.reply_to_message
    return bool(replied and replied.from_user and replied.from_user.id == bot.id)


def _language(update: Update, question: str = "") -> Lang:
    user = update.effective_user
    return choose_language(user.language_code if user else None, question)


def _describe(update: object) -> str:
    """Which update failed, without its text (questions may be personal)."""
    if not isinstance(update, Update):
        return repr(update)
    chat, user = update.effective_chat, update.effective_user
    return (
        f"update {update.update_id}"
        f" in chat {chat.id if chat else '-'} ({chat.type if chat else '-'})"
        f" from user {user.id if user else '-'}"
    )
