"""Articles added from the chat: an admin sends a file to the bot in a private chat.

The file (``.md``/``.txt`` with optional front matter, ``.html``, ``.pdf``) is fetched with
``getFile`` from the Bot API's file URL (``TELEGRAM_API_BASE_FILE_URL``), then checked: size
limit, an article file type, text that decodes and yields passages, no article of the same
name (files are never overwritten) and no identical file already in the corpus. It is then
written into the corpus folder and the index rebuilt with progress in one edited message
(the embedding cache makes that seconds); the old index answers meanwhile. A failed build
removes the file again, so everything is as it was. ``/articles`` lists the articles with
their ids. Non-admins who send files are told that only admins can add articles.

``/remove <id>`` (admins) asks first, with a button; confirmed, the article's file is moved
into the corpus folder's hidden ``.removed/`` folder (never deleted: putting it back is a
move) and the index rebuilt the same way. A failed rebuild moves the file back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path

from telegram import Document, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.i18n import Lang, choose_language, plain, text
from bot.reindex import rebuild
from bot.render import render_sources
from bot.state import BotState, state_of
from corpus import Document as Article
from corpus.read import ARTICLE_SUFFIXES, find_article_files

log = logging.getLogger(__name__)

#: Callback data of the /remove buttons: ``rm:y:<token>`` removes, ``rm:n`` keeps.
REMOVE_PATTERN = r"^rm:"
#: Where removed article files go, inside the corpus folder (hidden, so never read).
REMOVED_FOLDER = ".removed"
#: The longest file name Linux file systems take (ext4, xfs, btrfs: NAME_MAX), in bytes of
#: UTF-8: 85 Chinese characters.
NAME_MAX_BYTES = 255


class Refused(Exception):
    """The file cannot be added; the message (HTML) says why, for the admin."""


async def add_article(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A document in a private chat: add it for an admin, explain to anyone else."""
    state = state_of(context)
    message = update.effective_message
    user = update.effective_user
    lang = choose_language(user.language_code if user else None)
    if not state.is_admin(user):
        await message.reply_html(text("add_admin_only", lang))
        return
    await _add(state, message.document, message, lang, context)


async def list_articles(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/articles``: every indexed article with the id it is cited and managed by."""
    user = update.effective_user
    lang = choose_language(user.language_code if user else None)
    documents = state_of(context).engine.documents
    for part in render_sources(documents, lang, with_ids=True):
        await update.effective_message.reply_html(part)


async def _add(state: BotState, document: Document, message, lang: Lang, context) -> None:
    try:
        target, data = await _checked_download(state, document, lang)
    except Refused as refusal:
        await message.reply_html(str(refusal))
        return
    except TelegramError as exc:
        log.warning("Could not fetch an uploaded article: %s", exc)
        await message.reply_html(text("add_download_failed", lang))
        return
    if state.rebuilding:  # checked only now: refusals need no rebuild and may run meanwhile
        await message.reply_html(text("reindex_busy", lang))
        return
    state.rebuilding = True
    try:
        if not await _saved(target, data, message, lang):
            return
        log.info("Article %s added by user %s; rebuilding", target.name, message.from_user.id)
        status = await message.reply_html(text("reindex_reading", lang))
        report = await rebuild(state, status, lang, context.application)
    finally:
        state.rebuilding = False
    if report is None:  # the build failed or was cancelled: as if the file never came
        target.unlink(missing_ok=True)
        await message.reply_html(text("add_undone", lang, name=target.name))
        return
    doc_id = target.stem
    passages = sum(1 for p in state.engine.stored.passages if p.doc_id == doc_id)
    title = next((d.title for d in state.engine.documents if d.doc_id == doc_id), doc_id)
    key = "add_done_one" if passages == 1 else "add_done"
    await status.edit_text(text(key, lang, title=title, id=doc_id, passages=passages))


async def _checked_download(state: BotState, document: Document, lang: Lang) -> tuple[Path, bytes]:
    """Where the file goes in the corpus and its bytes, or Refused with the reason."""
    name = Path(document.file_name or "").name
    _check_name(name, lang)
    suffix = Path(name).suffix.lower()
    if suffix not in ARTICLE_SUFFIXES:
        kinds = ", ".join(sorted(ARTICLE_SUFFIXES))
        raise Refused(text("add_wrong_type", lang, name=name or "?", kinds=kinds))
    limit = state.settings.max_article_bytes
    if document.file_size and document.file_size > limit:
        raise Refused(text("add_too_big", lang, name=name, mb=round(limit / 1e6, 1)))
    target = state.settings.corpus_dir / name
    if any(path.stem == target.stem for path in find_article_files(state.settings.corpus_dir)):
        raise Refused(text("add_exists", lang, name=target.stem))
    data = bytes(await (await document.get_file()).download_as_bytearray())
    if len(data) > limit:
        raise Refused(text("add_too_big", lang, name=name, mb=round(limit / 1e6, 1)))
    digest = hashlib.sha256(data).digest()
    for path in find_article_files(state.settings.corpus_dir):
        if hashlib.sha256(path.read_bytes()).digest() == digest:
            raise Refused(text("add_duplicate", lang, name=name, existing=path.stem))
    _check_readable(name, data, limit, lang)
    return target, data


def _check_name(name: str, lang: Lang) -> None:
    """Refused unless ``name`` can name a file: no lone surrogate (half an emoji; no file
    system stores it, nor can a message show it), at most :data:`NAME_MAX_BYTES` bytes."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise Refused(text("add_bad_name", lang, name=name.encode("utf-8", "replace").decode())) from None
    if size > NAME_MAX_BYTES:
        raise Refused(text("add_name_too_long", lang, name=name, length=size, limit=NAME_MAX_BYTES))


def _check_readable(name: str, data: bytes, limit: int, lang: Lang) -> None:
    """The file read as the corpus reader will: it must decode and yield passages."""
    from corpus import load_corpus  # the reading pipeline, imported when first needed

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / name).write_bytes(data)
        corpus = load_corpus(Path(folder), limit)
    if not corpus.passages:
        reason = corpus.warnings[0] if corpus.warnings else "no paragraphs of text"
        raise Refused(text("add_unreadable", lang, name=name, reason=reason))


async def _saved(target: Path, data: bytes, message: Message, lang: Lang) -> bool:
    """Whether the article is written into the corpus; if not (a full disk, a read-only
    folder), the admin is told why and nothing has changed."""
    try:
        _write_new(target, data)
    except OSError as exc:
        log.error("Could not save the uploaded article %s: %s", target, exc)
        reason = exc.strerror or exc
        await message.reply_html(text("add_not_saved", lang, name=target.name, reason=reason))
        return False
    return True


def _write_new(target: Path, data: bytes) -> None:
    """Write ``target`` completely, never replacing an existing file (a link is refused
    when the name exists), so a crash leaves no half file in the corpus, and a failed
    write (a full disk) no temporary one."""
    tmp = tempfile.NamedTemporaryFile(dir=target.parent, prefix=".upload-", delete=False)
    try:
        with tmp:
            tmp.write(data)
        os.link(tmp.name, target)
    finally:
        os.unlink(tmp.name)


async def ask_to_remove(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/remove <id>`` (admins): name the article and ask with a button; nothing changes yet."""
    state = state_of(context)
    user = update.effective_user
    lang = choose_language(user.language_code if user else None)
    message = update.effective_message
    if not state.is_admin(user):
        await message.reply_html(text("remove_admin_only", lang))
        return
    doc_id = " ".join(context.args or []).strip()
    article = _article(state, lambda d: d.doc_id == doc_id) if doc_id else None
    if article is None:
        key = "remove_unknown" if doc_id else "remove_usage"
        await message.reply_html(text(key, lang, id=_shorten_id(doc_id)))
        return
    passages = sum(1 for p in state.engine.stored.passages if p.doc_id == doc_id)
    buttons = InlineKeyboardMarkup([[
        InlineKeyboardButton(plain("remove_button", lang), callback_data=f"rm:y:{_token(doc_id)}"),
        InlineKeyboardButton(plain("keep_button", lang), callback_data="rm:n"),
    ]])
    await message.reply_html(
        text("remove_ask", lang, title=article.title or doc_id, id=doc_id, passages=passages),
        reply_markup=buttons,
    )


async def confirm_removal(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A press on a /remove button: only an admin's counts; "remove" moves the file out and
    rebuilds, showing progress in the question's own message."""
    state = state_of(context)
    query = update.callback_query
    lang = choose_language(query.from_user.language_code)
    if not state.is_admin(query.from_user):
        await query.answer(plain("remove_admin_only", lang), show_alert=True)
        return
    token = query.data.removeprefix("rm:y:") if query.data.startswith("rm:y:") else None
    article = _article(state, lambda d: _token(d.doc_id) == token) if token else None
    if article is None:
        await query.answer()
        key = "remove_kept" if token is None else "remove_gone"
        await query.edit_message_text(text(key, lang))
        return
    if state.rebuilding:
        await query.answer(plain("reindex_busy", lang), show_alert=True)
        return
    await query.answer()
    await _remove(state, article, query.message, lang, context)


async def _remove(state: BotState, article: Article, status, lang: Lang, context) -> None:
    state.rebuilding = True
    try:
        parked = _park(state.settings.corpus_dir, article.source_file)
        log.info("Article %s removed by an admin; rebuilding", article.doc_id)
        status = await status.edit_text(text("reindex_reading", lang))
        report = await rebuild(state, status, lang, context.application)
        if report is None and parked is not None:  # as if the button was never pressed
            os.rename(parked, state.settings.corpus_dir / article.source_file)
    finally:
        state.rebuilding = False
    if report is None:
        await status.reply_html(text("remove_undone", lang, id=article.doc_id))
        return
    kept = f"{REMOVED_FOLDER}/{parked.name}" if parked else "—"
    await status.edit_text(
        text("remove_done", lang, title=article.title or article.doc_id, id=article.doc_id,
             articles=report.documents, kept=kept)
    )


def _park(corpus_dir: Path, source_file: str) -> Path | None:
    """Move the article's file into ``.removed/`` under a new, time-stamped name; None when
    it is already gone from the folder (the rebuild then only catches up)."""
    source = corpus_dir / source_file
    if not source.exists():
        return None
    folder = corpus_dir / REMOVED_FOLDER
    folder.mkdir(exist_ok=True)
    parked = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{source.name}"
    os.rename(source, parked)
    return parked


def _article(state: BotState, wanted) -> Article | None:
    return next((d for d in state.engine.documents if wanted(d)), None)


def _token(doc_id: str) -> str:
    """A short stand-in for an id in callback data (at most 64 bytes; ids can be longer)."""
    return hashlib.sha256(doc_id.encode()).hexdigest()[:16]


def _shorten_id(doc_id: str) -> str:
    return doc_id if len(doc_id) <= 80 else doc_id[:79] + "…"
