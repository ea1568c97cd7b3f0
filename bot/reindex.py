"""``/reindex``: an admin rebuilds the index from chat while the old one keeps answering.

The build runs in a process of its own (``index.build_process``): it is CPU-bound for
minutes on a large corpus, and what it holds goes back to the system when it ends instead
of staying in the bot (320 MB instead of 236 after a first build of XQuAD's corpus). Its
progress reports only record the latest numbers; the event loop edits one status message
from them every few seconds, so Telegram's edit limits are never hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import time

from telegram import Message, Update
from telegram.error import TelegramError
from telegram.ext import Application, ContextTypes

from bot.i18n import Lang, choose_language, plain, text
from bot.render import shorten
from bot.state import BotState, state_of
from index.build import BuildReport
from index.build_process import build_in_child
from qabot.errors import QabotError

log = logging.getLogger(__name__)

#: Seconds between two edits of the progress message.
PROGRESS_INTERVAL = 3.0
#: Build warnings quoted in the final message; the rest are only counted.
SHOWN_WARNINGS = 5


class _Progress:
    """The build's latest (done, total) and when it started embedding."""

    def __init__(self) -> None:
        self.latest: tuple[int, int] | None = None
        self.first: tuple[float, int] | None = None  # (time, done) of the first report

    def __call__(self, done: int, total: int) -> None:
        if self.first is None:
            self.first = (time.monotonic(), done)  # cached texts count as done at once
        self.latest = (done, total)

    def describe(self, lang: Lang) -> str:
        if not self.latest or not self.latest[1]:
            return text("reindex_reading", lang)
        done, total = self.latest
        message = text("reindex_progress", lang, done=done, total=total, percent=done * 100 // total)
        minutes = self._minutes_left()
        return message if minutes is None else message + text("reindex_eta", lang, minutes=minutes)

    def _minutes_left(self) -> int | None:
        """Minutes to go at the rate so far, once there is a rate to go by."""
        started, done_then = self.first or (0.0, 0)
        done, total = self.latest
        elapsed = time.monotonic() - started
        if done - done_then < 1 or elapsed < 1:
            return None
        return max(1, round((total - done) * elapsed / (done - done_then) / 60))


async def reindex(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Start a rebuild for an admin; refuse everyone else, and a second one while one runs."""
    state = state_of(context)
    message = update.effective_message
    user = update.effective_user
    lang = choose_language(user.language_code if user else None)
    if not state.is_admin(user):
        await message.reply_html(text("admin_only", lang))
        return
    if state.rebuilding:
        await message.reply_html(text("reindex_busy", lang))
        return
    state.rebuilding = True
    try:
        status = await message.reply_html(text("reindex_reading", lang))
        log.info("Index rebuild started by user %s", user.id)
        report = await rebuild(state, status, lang, context.application)
        if report is not None:
            await status.edit_text(_done(report, lang))
    finally:
        state.rebuilding = False


async def rebuild(
    state: BotState, status: Message, lang: Lang, application: Application
) -> BuildReport | None:
    """Rebuild the index, showing progress in ``status``, and swap it in. On failure or
    cancellation ``status`` says so, the old index keeps answering, and None is returned.
    The caller holds ``state.rebuilding``."""
    progress = _Progress()
    settings, store = state.settings, state.engine.vector_store
    build = asyncio.ensure_future(
        build_in_child(
            settings.corpus_dir,
            settings.index_dir,
            settings.model_source,
            max_article_bytes=settings.max_article_bytes,
            progress=progress,
            vector_store=store.address if store else "",
        )
    )
    try:
        if not await _follow(build, progress, status, lang, application):
            log.warning("Index rebuild cancelled: the bot is stopping; the previous index stays")
            with contextlib.suppress(TelegramError):
                await status.edit_text(text("reindex_cancelled", lang))
            return None
    finally:
        build.cancel()  # a no-op once it is done; if this handler is cancelled, the child ends
    try:
        report = build.result()
        engine = await asyncio.to_thread(state.engine.with_index, settings.index_dir)
    except QabotError as exc:
        log.warning("Index rebuild failed: %s", exc)
        await status.edit_text(text("reindex_failed", lang, reason=shorten(str(exc), 1500)[0]))
        return None
    except Exception:
        log.exception("Index rebuild failed unexpectedly")
        reason = plain("reindex_failed_unknown", lang)
        await status.edit_text(text("reindex_failed", lang, reason=reason))
        return None
    state.swap(engine)
    log.info("Index rebuilt: %d documents, %d passages", report.documents, report.passages)
    return report


async def _follow(
    build: asyncio.Future, progress: _Progress, status: Message, lang: Lang, application: Application
) -> bool:
    """Show ``build``'s progress in ``status`` until it ends (True), or end it if the bot
    is stopping (False: SIGTERM must not wait minutes for a build)."""
    shown = progress.describe(lang)  # what the status message says now
    while True:
        finished, _ = await asyncio.wait({build}, timeout=PROGRESS_INTERVAL)
        if finished:
            return True
        if not application.running:
            build.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await build  # the child has ended
            return False
        shown = await _edit_progress(status, progress.describe(lang), shown)


async def _edit_progress(status: Message, wanted: str, shown: str) -> str:
    """Show progress if it changed; a failed progress edit is not worth failing the build."""
    if wanted == shown:
        return shown
    try:
        await status.edit_text(wanted)
    except TelegramError as exc:
        log.warning("Could not update the rebuild progress: %s", exc)
        return shown
    return wanted


def _done(report: BuildReport, lang: Lang) -> str:
    lines = [
        text(
            "reindex_done",
            lang,
            documents=report.documents,
            passages=report.passages,
            seconds=round(report.seconds),
        )
    ]
    if report.warnings:
        lines.append(text("reindex_warnings", lang, count=len(report.warnings)))
        lines.extend(
            "• " + html.escape(shorten(warning, 300)[0])
            for warning in report.warnings[:SHOWN_WARNINGS]
        )
    return "\n".join(lines)
