"""The one ``Application``: wiring of settings, engine, handlers and network behaviour.

``qabot run`` calls :func:`run`; the end-to-end tests call :func:`build_application` with
a fake Bot API server's URL, so both exercise the same bot.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError
from telegram import BotCommand, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    Defaults,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot import articles, handlers, logs
from bot.i18n import Lang
from bot.inline import inline_query
from bot.database import Database, open_database
from bot.feedback import FeedbackStore
from bot.journal import ADOPT_INTERVAL, NotAnUpdate, UpdateJournal, parse_update
from bot.network import TIMEOUTS, PollingRequest, RetryingRateLimiter
from bot.paging import CALLBACK_PATTERN, VOTE_PATTERN
from bot.reindex import reindex
from bot.state import BotState, state_in
from bot.watch import WATCH_INTERVAL, follow_rebuilds
from index.build import corpus_changes
from index.embedding.embedder import Embedder
from index.retrieval.engine import Engine
from qabot.engine import load_engine
from qabot.errors import QabotError
from qabot.memory import release_freed_memory
from qabot.settings import Settings

log = logging.getLogger(__name__)

#: bot_data key set when Telegram rejected the token while running.
TOKEN_REJECTED = "token_rejected"
#: What BotFather hands out: "<bot id>:<secret>" (checked before the first request).
TOKEN_SHAPE = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{8,}")

#: Updates the bot asks Telegram for; everything else is never delivered.
ALLOWED_UPDATES = [
    Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY, Update.INLINE_QUERY
]

#: How many 429s in a row one request waits out before giving up.
FLOOD_RETRIES = 5

#: Updates handled at once. Answering is CPU-bound (2 cores), so more would not answer
#: sooner; it would only lengthen a shutdown, which lets the ones in hand finish.
CONCURRENT_UPDATES = 16

COMMANDS: dict[Lang, list[BotCommand]] = {
    "en": [
        BotCommand("ask", "Ask a question (in groups)"),
        BotCommand("sources", "The articles I know"),
        BotCommand("help", "How to ask"),
    ],
    "zh": [
        BotCommand("ask", "提问（在群组中）"),
        BotCommand("sources", "我所知道的文章"),
        BotCommand("help", "如何提问"),
    ],
}


def build_application(
    settings: Settings,
    engine: Engine,
    *,
    network_backoff: float = 0.5,
    watch_interval: float = WATCH_INTERVAL,
) -> JournaledApplication:
    """The bot for ``settings`` answering from ``engine``, ready for ``run_polling``.
    ``watch_interval``: seconds between looks for an index rebuilt outside the bot."""
    require_token(settings)
    logs.quiet_http_client()
    database = open_database(settings.database_address)
    journal = UpdateJournal(
        database, bot_id=int(settings.telegram_token.split(":")[0]), owner=settings.replica
    )
    stop = []  # the application, once built, for the polling request's callback
    application = (
        ApplicationBuilder()
        .application_class(JournaledApplication, {"journal": journal, "database": database})
        .token(settings.telegram_token)
        .base_url(settings.telegram_base_url)
        .base_file_url(settings.telegram_base_file_url)
        .defaults(
            Defaults(
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                allow_sending_without_reply=True,
            )
        )
        .rate_limiter(RetryingRateLimiter(max_retries=FLOOD_RETRIES, backoff=network_backoff))
        .connect_timeout(TIMEOUTS["connect_timeout"])
        .read_timeout(TIMEOUTS["read_timeout"])
        .write_timeout(TIMEOUTS["write_timeout"])
        .pool_timeout(TIMEOUTS["pool_timeout"])
        .get_updates_request(
            PollingRequest(journal.record, lambda: _stop_on_rejected_token(stop[0]))
        )
        .concurrent_updates(CONCURRENT_UPDATES)
        .post_init(lambda application: _start(application, watch_interval))
        .post_stop(_stop)
        .build()
    )
    BotState(settings=settings, engine=engine, feedback=FeedbackStore(database)).install(
        application.bot_data
    )
    add_handlers(application)
    stop.append(application)
    return application


class JournaledApplication(Application):
    """python-telegram-bot's ``Application``, keeping the update journal (``bot.journal``):
    each update is handled once and crossed off when done.

    Stopping is prompt: python-telegram-bot would first handle every update already
    fetched (500 took 25.9 s, near Docker's 30 s grace before a kill). Here only the ones in
    hand finish (at most ``CONCURRENT_UPDATES``); the rest stay in the journal for the next
    start.
    """

    def __init__(
        self, *, journal: UpdateJournal, database: Database, **options: Any
    ) -> None:
        super().__init__(**options)
        self.journal = journal
        #: The bot's database (journal, question log), closed when the bot stops.
        self.database = database
        #: Updates left for the next start because the bot was stopping.
        self.kept = 0
        #: The task taking over updates other replicas left (``adopt``), while running.
        self.adopter: asyncio.Task | None = None
        #: The task registering the command menu, while it runs (see ``_start``).
        self.menu: asyncio.Task | None = None

    async def process_update(self, update: object) -> None:
        if not isinstance(update, Update):
            await super().process_update(update)
            return
        if not self.running:  # stopping: answered after the next start
            self.kept += 1
            return
        if not self.journal.claim(update.update_id):
            log.info("Update %d was handled before; not again", update.update_id)
            return
        await super().process_update(update)  # handler errors end in on_error, not here
        self.journal.done(update.update_id)

    async def resume(self) -> None:
        """Queue the updates received before the last stop that were not handled."""
        pending = await asyncio.to_thread(self.journal.pending)
        if pending:
            log.info("Handling %d updates received before the last stop", len(pending))
        await self._queue_recorded(pending)

    async def adopt(self, interval: float = ADOPT_INTERVAL) -> None:
        """Every ``interval`` s, queue updates recorded that long ago and never claimed (a
        replica stopped with them queued); runs until cancelled. Ones this process is
        handling are skipped by ``UpdateJournal.claim``."""
        while True:
            await asyncio.sleep(interval)
            try:
                left = await asyncio.to_thread(self.journal.pending, time.time() - interval)
            except SQLAlchemyError as exc:
                log.warning("Could not look for updates other replicas left: %s", exc)
                continue
            if left:
                log.info("Taking over %d updates another replica left unanswered", len(left))
            await self._queue_recorded(left)

    async def _queue_recorded(self, payloads: list[dict]) -> None:
        """Queue updates read back from the journal. One that is no update (journaled before
        the webhook checked, or edited in the database) is crossed off with a warning: it
        must not stop every start of the bot."""
        for payload in payloads:
            try:
                update = parse_update(payload, self.bot)
            except NotAnUpdate as exc:
                log.warning("Dropping a recorded update: it is not one (%s)", exc)
                await asyncio.to_thread(self.journal.done, payload.get("update_id"))
                continue
            await self.update_queue.put(update)


def _stop_on_rejected_token(application: Application) -> None:
    """Telegram refused the token while running (revoked in BotFather, bot deleted): stop,
    so that ``run`` exits non-zero and a supervisor notices, instead of idling silently."""
    if application.running and not application.bot_data.get(TOKEN_REJECTED):
        application.bot_data[TOKEN_REJECTED] = True
        application.stop_running()


def require_token(settings: Settings) -> None:
    """Fail before loading anything when the one setting the bot cannot guess is missing
    or cannot be a token (it would otherwise be retried against Telegram forever)."""
    if not settings.telegram_token:
        raise QabotError(
            "The Telegram bot needs its token: set TELEGRAM_BOT_TOKEN (BotFather gives it to "
            "you when you create the bot, see docs/bot.md)."
        )
    if not TOKEN_SHAPE.fullmatch(settings.telegram_token):
        raise QabotError(
            "TELEGRAM_BOT_TOKEN does not look like a bot token (the bot's number, a colon, "
            "then letters, digits, - and _). Copy it again from BotFather (/mybots, API Token)."
        )


def add_handlers(application: Application) -> None:
    """Commands first, then questions by chat type, then the fallbacks for everything else."""
    private = filters.ChatType.PRIVATE
    application.add_handlers(
        [
            CommandHandler(["start", "help"], handlers.start),
            CommandHandler("sources", handlers.sources),
            CommandHandler("ask", handlers.ask_command),
            CommandHandler("reindex", reindex),
            CommandHandler("stats", handlers.stats),
            CommandHandler("articles", articles.list_articles),
            CommandHandler("remove", articles.ask_to_remove),
            MessageHandler(private & filters.TEXT & ~filters.COMMAND, handlers.private_text),
            MessageHandler(
                filters.ChatType.GROUPS & filters.TEXT & ~filters.COMMAND, handlers.group_text
            ),
            MessageHandler(filters.COMMAND, handlers.unknown_command),
            MessageHandler(private & filters.Document.ALL, articles.add_article),
            MessageHandler(private & filters.UpdateType.MESSAGE & ~filters.TEXT, handlers.not_text),
            CallbackQueryHandler(handlers.turn_page, pattern=CALLBACK_PATTERN),
            CallbackQueryHandler(handlers.vote, pattern=VOTE_PATTERN),
            CallbackQueryHandler(articles.confirm_removal, pattern=articles.REMOVE_PATTERN),
            CallbackQueryHandler(handlers.unknown_button),
            InlineQueryHandler(inline_query),
        ]
    )
    application.add_error_handler(handlers.on_error)


async def _start(application: JournaledApplication, watch_interval: float) -> None:
    """After start-up: the updates left from the last run, the command menu, and following
    rebuilds made outside the bot. The menu is registered beside the polling, not before
    it: two calls to Telegram (retried when it fails) that no answer needs."""
    application.menu = asyncio.create_task(register_commands(application))
    await application.resume()
    state = state_in(application.bot_data)
    state.watcher = asyncio.create_task(follow_rebuilds(state, watch_interval))
    application.adopter = asyncio.create_task(application.adopt())


async def _stop(application: JournaledApplication) -> None:
    state = state_in(application.bot_data)
    for task in (application.adopter, application.menu):
        if task is not None:
            task.cancel()
    application.adopter = application.menu = None
    if state.watcher is not None:
        state.watcher.cancel()
        state.watcher = None
    if application.kept:
        log.info("Stopped; %d updates not yet answered are kept for the next start",
                 application.kept)
    application.database.dispose()


async def register_commands(application: Application) -> None:
    """The command menu, in English for everyone and in Chinese for Chinese-language users.

    The menu is a convenience: if Telegram keeps failing here, the bot starts without it.
    """
    try:
        await application.bot.set_my_commands(COMMANDS["en"])
        await application.bot.set_my_commands(COMMANDS["zh"], language_code="zh")
    except TelegramError as exc:
        log.warning("Could not register the command menu: %s", exc)


def run(settings: Settings, model: Future[Embedder] | None = None) -> None:
    """``qabot run``: load the engine once (with ``model`` if its loading has started,
    :func:`qabot.engine.start_loading_model`), then long-poll Telegram (or serve the webhook,
    when QABOT_WEBHOOK_URL is set) until stopped."""
    require_token(settings)
    logs.configure(settings.telegram_token, settings.webhook_secret, _password(settings.database_url))
    log.info("Loading the model and the index from %s", settings.index_dir)
    engine = load_engine(settings, model)
    release_freed_memory()
    stale = corpus_changes(engine.corpus, settings.corpus_dir)
    if stale:
        log.warning(
            "The index in %s does not hold the articles in %s: %s. An admin can send /reindex "
            "(or run `qabot index build`).", settings.index_dir, settings.corpus_dir, stale,
        )
    application = build_application(settings, engine)
    log.info("Starting the bot; %d articles indexed", len(engine.documents))
    try:
        if settings.webhook_url:
            from bot.webhook import serve_webhook  # aiohttp: only webhook mode pays for it

            asyncio.run(serve_webhook(application, settings, ALLOWED_UPDATES))
        else:  # bootstrap_retries=-1: if Telegram is unreachable at start, keep trying.
            application.run_polling(allowed_updates=ALLOWED_UPDATES, bootstrap_retries=-1)
    except InvalidToken:
        # PTB's own message quotes the token; this one doesn't. (Mid-run, getUpdates raises
        # bot.network.TokenRejected instead, and the bot stops in order: said below.)
        if not application.bot_data.get(TOKEN_REJECTED):
            raise QabotError(
                "Telegram rejected the token in TELEGRAM_BOT_TOKEN. Copy it again from "
                "BotFather (/mybots, API Token)."
            ) from None
    if application.bot_data.get(TOKEN_REJECTED):
        raise QabotError(
            "Telegram stopped accepting the token in TELEGRAM_BOT_TOKEN while the bot was "
            "running (revoked in BotFather, or the bot was deleted). Set the new token and start "
            "the bot again."
        )


def _password(database_url: str) -> str:
    """The password in a database URL (to keep out of the logs), or ""."""
    return urlsplit(database_url).password or "" if database_url else ""
