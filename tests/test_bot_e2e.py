"""End to end: the real bot (the builder ``qabot run`` uses) and the real engine over the
bundled corpus, talking to the fake Bot API server. Assertions are about what a user sees.

The model and the index are loaded once per session (``engine`` in conftest.py); each test
gets a fresh bot and a fresh fake server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import random
import shutil
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from fake_telegram import FakeTelegram, parse_html, polling
from processes import alive, children

from bot import reindex as reindex_module
from bot.app import ALLOWED_UPDATES, CONCURRENT_UPDATES, build_application
from bot.database import open_database
from bot.feedback import FeedbackStore
from bot.render import close_results
from bot.webhook import serve_webhook
from index.build import build_index
from index.store.generations import load_index
from qabot.errors import QabotError

pytestmark = pytest.mark.slow

ADMIN = 4242
BOT = "@qa_test_bot"
EN_QUESTION = "What industrial clusters are planned in the middle reaches of the Yangtze River?"
ZH_QUESTION = "中韩石化航煤加氢项目投资多少"
NO_MATCH = "Who won the football world cup?"


@pytest_asyncio.fixture
async def telegram():
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
def bot_settings(settings_with_index, telegram, tmp_path):
    return dataclasses.replace(
        settings_with_index,
        database=tmp_path / "qabot.db",
        telegram_token=telegram.token,
        telegram_base_url=telegram.base_url,
        telegram_base_file_url=telegram.base_file_url,
        admin_ids=frozenset({ADMIN}),
    )


def start_bot(settings, engine, **options):
    """The same builder ``qabot run`` uses, pointed at the fake server, polling."""
    application = build_application(settings, engine, network_backoff=0.05, **options)
    return polling(application, ALLOWED_UPDATES)


@pytest_asyncio.fixture
async def qabot(bot_settings, engine):
    """The bot, running; yields its shared state."""
    async with start_bot(bot_settings, engine) as application:
        yield application.bot_data["qabot"]


def expected_top(engine, question):
    """What the engine considers the best passage: the reply must show it."""
    answer = engine.ask(question, 9)
    assert answer.answered, f"the bundled corpus should answer {question!r}"
    return answer.hits[0]


def bold_texts(message):
    return [
        message["text"][e["offset"] : e["offset"] + e["length"]]
        for e in message.get("entities", [])
        if e["type"] == "bold"
    ]


def group_message(telegram, user, text, **kwargs):
    return telegram.send(user, text, chat=telegram.group_chat(), **kwargs)["message"]


# -- private chats -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_start_help_and_command_menus(telegram, qabot, engine):
    telegram.send(telegram.user(1), "/start")
    telegram.send(telegram.user(2, "zh-hans"), "/help")
    [english] = await telegram.replies(1)
    [chinese] = await telegram.replies(2)
    assert f"I answer questions about {len(engine.documents)} articles" in english["text"]
    assert "/sources" in english["text"] and f"{BOT} your question" in english["text"]
    assert f"我可以根据 {len(engine.documents)} 篇文章回答问题" in chinese["text"]
    await telegram.wait_for(lambda: set(telegram.commands) == {"", "zh"})  # registered beside polling
    assert [c["command"] for c in telegram.commands["zh"]] == ["ask", "sources", "help"]
    assert "提问" in telegram.commands["zh"][0]["description"]


@pytest.mark.asyncio
async def test_english_question_gets_the_passage_with_citation(telegram, qabot, engine):
    top = expected_top(engine, EN_QUESTION)
    telegram.send(telegram.user(3), EN_QUESTION)
    [reply] = await telegram.replies(3)
    text = reply["text"]
    assert "Yangtze" in text
    start, end = top.highlight
    sentence = top.passage.text[start:end]
    assert text.startswith(sentence + "\n— ") and bold_texts(reply)[0] == sentence  # answer first
    source = text.split("\n")[1]
    assert top.document.title in source and f"¶ {top.passage.paragraph}" in source
    [folded] = [e for e in reply["entities"] if e["type"] == "expandable_blockquote"]
    fold = text[folded["offset"] : folded["offset"] + folded["length"]]
    if start == 0:  # the sentence opens the passage: the fold is the rest, not it again
        assert fold == top.passage.text[end:].strip() and sentence not in fold
    else:  # the whole passage, folded away
        assert fold == top.passage.text
    answer = engine.ask(EN_QUESTION, 9)
    also = close_results(answer.hits, engine.min_score)
    assert text.count("\n• ") == len(also) <= 2
    assert all(hit.document.title[:40] in text for hit in also)
    assert "reply_to_message" not in reply  # private chats get no quote
    assert telegram.calls_to("sendChatAction") == []  # a quick answer: no "typing…" first


@pytest.mark.asyncio
async def test_typing_is_shown_only_before_a_slow_answer(telegram, qabot, monkeypatch):
    """Each "typing…" counts against Telegram's limits like a message (a group's 20 a
    minute), so it is sent only when an answer takes longer than TYPING_AFTER."""
    from bot import handlers
    from bot.state import BotState

    ask = BotState.ask

    async def slow_for_one_user(self, question, top_k, within=None):
        if question == ZH_QUESTION:
            await asyncio.sleep(handlers.TYPING_AFTER + 0.5)
        return await ask(self, question, top_k, within)

    monkeypatch.setattr(BotState, "ask", slow_for_one_user)
    telegram.send(telegram.user(91), EN_QUESTION)
    await telegram.replies(91)
    assert telegram.calls_to("sendChatAction") == []
    telegram.send(telegram.user(92, "zh"), ZH_QUESTION)
    [reply] = await telegram.replies(92, timeout=15)
    assert "1.52亿元" in reply["text"]
    [typing] = telegram.calls_to("sendChatAction")
    assert int(typing.params["chat_id"]) == 92 and typing.params["action"] == "typing"
    assert typing.at < telegram.calls_to("sendMessage")[-1].at  # before the answer


@pytest.mark.asyncio
async def test_chinese_question_gets_a_chinese_answer(telegram, qabot, engine):
    top = expected_top(engine, ZH_QUESTION)
    telegram.send(telegram.user(4, "zh"), ZH_QUESTION)
    [reply] = await telegram.replies(4)
    assert "1.52亿元" in reply["text"]
    assert f"第 {top.passage.paragraph} 段" in reply["text"]
    start, end = top.highlight
    assert reply["text"].startswith(top.passage.text[start:end] + "\n— ")


@pytest.mark.asyncio
async def test_across_languages(telegram, qabot):
    """The reply's wording follows the user's language or the question's; passages don't."""
    telegram.send(telegram.user(5, "zh-hant"), EN_QUESTION)
    telegram.send(telegram.user(6, "en"), ZH_QUESTION)
    [zh_user] = await telegram.replies(5)
    [en_user] = await telegram.replies(6)
    assert "Yangtze" in zh_user["text"] and "段" in zh_user["text"].split("\n")[1]
    assert "1.52亿元" in en_user["text"] and "段" in en_user["text"].split("\n")[1]


@pytest.mark.asyncio
async def test_no_match_says_so_and_suggests_sources(telegram, qabot):
    telegram.send(telegram.user(7), NO_MATCH)
    telegram.send(telegram.user(8, "zh"), NO_MATCH)
    [english] = await telegram.replies(7)
    [chinese] = await telegram.replies(8)
    assert (
        english["text"].startswith("The articles don't cover this")
        and "/sources" in english["text"]
    )
    assert chinese["text"].startswith("文章里没有涉及这个问题") and "/sources" in chinese["text"]
    assert "reply_markup" not in english
    assert "Closest articles" not in english["text"]  # nothing stands out for an omelette


@pytest.mark.asyncio
async def test_a_near_miss_decline_names_the_closest_articles(telegram, qabot):
    telegram.send(telegram.user(9, "zh"), "重庆的平均工资是多少？")
    [reply] = await telegram.replies(9)
    assert reply["text"].startswith("文章里没有涉及这个问题") and "最接近的文章：" in reply["text"]
    assert reply["text"].count("• ") >= 2


@pytest.mark.asyncio
async def test_sources_lists_every_article(telegram, qabot, engine):
    telegram.send(telegram.user(9), "/sources")
    [reply] = await telegram.replies(9)
    assert reply["text"].startswith(f"Indexed articles: {len(engine.documents)}")
    for document in engine.documents:
        assert document.title in reply["text"]
        if document.date:
            assert document.date in reply["text"]


@pytest.mark.asyncio
async def test_more_button_pages_through_further_results(telegram, qabot):
    user = telegram.user(10)
    telegram.send(user, EN_QUESTION)
    [reply] = await telegram.replies(10)
    [[_, _, more]] = reply["reply_markup"]["inline_keyboard"]  # 👍 👎 More
    assert len(more["callback_data"].encode()) <= 64
    telegram.press(user, reply, more["callback_data"])

    def edited():
        message = telegram.message(10, reply["message_id"])
        return message if message["text"].startswith("Results 2–4 of") else None

    page = await telegram.wait_for(edited)
    assert page["text"].count("• ") == 3 and page["text"].count("¶ ") == 3  # 3 results, cited
    assert [b["text"] for b in page["reply_markup"]["inline_keyboard"][0]] == [
        "👍", "👎", "‹ Back", "More ›"
    ]
    assert len(telegram.sent(10)) == 1  # paging edits, never posts


# -- groups ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_group_answers_only_what_is_addressed_to_the_bot(telegram, qabot):
    group = telegram.group_chat()["id"]
    ann, bob = telegram.user(21), telegram.user(22, "zh")
    asked = group_message(telegram, ann, f"/ask{BOT} {EN_QUESTION}")
    [first] = await telegram.replies(group)
    assert first["reply_to_message"]["message_id"] == asked["message_id"]
    assert "Yangtze" in first["text"]

    group_message(telegram, ann, "Nice weather today, isn't it?")
    group_message(telegram, ann, "/ask@some_other_bot what time is it")
    group_message(telegram, ann, "/unknown")
    group_message(telegram, ann, None, sticker=telegram.sticker())
    await telegram.quiet(1.0)
    assert len(telegram.sent(group)) == 1  # chatter, other bots' commands: silence

    mention = group_message(telegram, bob, f"{BOT} {ZH_QUESTION}")
    second = (await telegram.replies(group, 2))[1]
    assert second["reply_to_message"]["message_id"] == mention["message_id"]
    assert "1.52亿元" in second["text"]

    follow_up = group_message(telegram, ann, EN_QUESTION, reply_to=first)
    third = (await telegram.replies(group, 3))[2]
    assert third["reply_to_message"]["message_id"] == follow_up["message_id"]
    assert "Yangtze" in third["text"]

    group_message(telegram, ann, f"/ask {ZH_QUESTION}")
    group_message(telegram, ann, "/ask")
    group_message(telegram, ann, f"/nonsense{BOT}")
    replies = await telegram.replies(group, 6)
    texts = sorted(r["text"] for r in replies[3:])
    assert any("1.52亿元" in t for t in texts)
    assert any(t.startswith("Put your question after the command") for t in texts)
    assert any(t.startswith("I don't know that command") for t in texts)


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_bad_input_in_private_gets_polite_hints(telegram, qabot):
    user = telegram.user(30)
    inputs = {
        "   ": "Please send me a question as text.",
        "\u200b\u2060\u00ad\ufeff": "Please send me a question as text.",  # nothing visible
        "x" * 1001: "That is 1001 characters long. Please keep questions under 1000",
        "/frobnicate": "I don't know that command. Send /help",
    }
    for text in inputs:
        telegram.send(user, text)
    for content in (
        {"sticker": telegram.sticker()},
        {"photo": telegram.photo()},
        {"voice": telegram.voice()},
    ):
        telegram.send(user, **content)
    replies = await telegram.replies(30, 7)
    texts = [r["text"] for r in replies]
    for expected in inputs.values():
        assert any(t.startswith(expected) for t in texts), expected
    assert texts.count("Please send me a question as text.") == 2
    assert texts.count("I can only read text. Please type your question.") == 3
    await telegram.quiet(0.5)
    assert len(telegram.sent(30)) == 7


@pytest.mark.asyncio
async def test_edited_question_is_answered_again(telegram, qabot):
    user = telegram.user(31)
    original = telegram.send(user, NO_MATCH)["message"]
    await telegram.replies(31)
    telegram.edit(original, EN_QUESTION)
    replies = await telegram.replies(31, 2)
    assert "Yangtze" in replies[1]["text"]


# -- rebuilding --------------------------------------------------------------------------


@pytest.fixture
def small_corpus(bot_settings, engine, tmp_path):
    """A corpus of the one article that answers EN_QUESTION, and a private copy of the index."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(
        bot_settings.corpus_dir / expected_top(engine, EN_QUESTION).document.source_file, corpus
    )
    index = tmp_path / "index"
    shutil.copytree(bot_settings.index_dir, index)
    return dataclasses.replace(bot_settings, corpus_dir=corpus, index_dir=index)


def build_on_a_slow_machine(monkeypatch) -> None:
    """/reindex runs the real build in its process, and its result arrives 1.5 s after the
    build ended, so the loop can show progress (and answer questions) meanwhile."""
    real_build = reindex_module.build_in_child

    async def slow_build(*args, **kwargs):
        report = await real_build(*args, **kwargs)
        await asyncio.sleep(1.5)
        return report

    monkeypatch.setattr(reindex_module, "build_in_child", slow_build)
    monkeypatch.setattr(reindex_module, "PROGRESS_INTERVAL", 0.2)


@pytest.mark.asyncio
async def test_reindex_by_admin_while_questions_keep_flowing(
    telegram, engine, small_corpus, monkeypatch
):
    build_on_a_slow_machine(monkeypatch)
    async with start_bot(small_corpus, engine) as application:
        state = application.bot_data["qabot"]
        admin, reader = telegram.user(ADMIN), telegram.user(41)
        telegram.send(reader, EN_QUESTION)
        [before] = await telegram.replies(41)
        stale_more = before["reply_markup"]["inline_keyboard"][0][-1]["callback_data"]

        telegram.send(admin, "/reindex")
        [status] = await telegram.replies(ADMIN)
        telegram.send(admin, "/reindex")
        telegram.send(reader, ZH_QUESTION)  # not in the new corpus: only the old index knows
        [_, busy] = await telegram.replies(ADMIN, 2)
        assert busy["text"].startswith("A rebuild is already running")
        meanwhile = (await telegram.replies(41, 2))[1]
        assert "1.52亿元" in meanwhile["text"]

        def rebuilt():
            message = telegram.message(ADMIN, status["message_id"])
            return message if message["text"].startswith("Index rebuilt") else None

        done = await telegram.wait_for(rebuilt, timeout=60)
        assert "from 1 article(s)" in done["text"]
        progress = [
            c
            for c in telegram.calls_to("editMessageText", ok=True)
            if "texts embedded" in c.params["text"]
        ]
        answered_at = telegram.calls_to("sendMessage", ok=True)[-1].at
        assert progress and answered_at < telegram.calls_to("editMessageText")[-1].at
        assert len(telegram.sent(ADMIN)) == 2  # progress went into one edited message
        await telegram.wait_for(lambda: not state.rebuilding, timeout=5)
        assert state.generation == 1

        telegram.press(reader, before, stale_more)
        answer = await telegram.wait_for(lambda: telegram.calls_to("answerCallbackQuery"))
        assert answer[0].params["text"].startswith("The articles were re-indexed")
        telegram.send(reader, "/sources")
        telegram.send(reader, ZH_QUESTION)
        sources, after = (await telegram.replies(41, 4))[2:]
        assert sources["text"].startswith("Indexed articles: 1")
        assert "1.52亿元" not in after["text"]


@pytest.mark.asyncio
async def test_stopping_the_bot_mid_rebuild_cancels_it_and_keeps_the_old_index(
    telegram, engine, small_corpus, long_corpus, monkeypatch
):
    """A first build of ``long_corpus`` takes about 40 s; the bot stops at once, and its
    build process with it."""
    monkeypatch.setattr(reindex_module, "PROGRESS_INTERVAL", 0.2)
    settings = dataclasses.replace(small_corpus, corpus_dir=long_corpus)
    before = load_index(settings.index_dir).generation
    async with start_bot(settings, engine) as application:
        state = application.bot_data["qabot"]
        telegram.send(telegram.user(ADMIN), "/reindex")
        [status] = await telegram.replies(ADMIN)
        await telegram.wait_for(
            lambda: "texts embedded" in telegram.message(ADMIN, status["message_id"])["text"],
            timeout=60,
        )
        [build] = children(os.getpid(), "index.build_process")
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 15  # not the 40 s the build would take
    assert not alive(build) and not children(os.getpid(), "index.build_process")
    assert not state.rebuilding and load_index(settings.index_dir).generation == before
    assert telegram.message(ADMIN, status["message_id"])["text"].startswith("The rebuild was stopped")


@pytest.mark.asyncio
async def test_an_index_rebuilt_from_the_shell_is_picked_up_without_a_restart(
    telegram, engine, small_corpus
):
    async with start_bot(small_corpus, engine, watch_interval=0.2) as application:
        state = application.bot_data["qabot"]
        reader = telegram.user(42)
        telegram.send(reader, ZH_QUESTION)
        [before] = await telegram.replies(42)
        assert "1.52亿元" in before["text"]  # the full index still answers it
        # What `qabot index build` does from a shell while the bot runs:
        await asyncio.to_thread(
            build_index, small_corpus.corpus_dir, small_corpus.index_dir, engine.embedder
        )
        await telegram.wait_for(lambda: state.generation == 1, timeout=30)
        telegram.send(reader, ZH_QUESTION)
        [_, after] = await telegram.replies(42, 2)
        assert "1.52亿元" not in after["text"]  # answered from the one-article index


@pytest.mark.asyncio
async def test_reindex_refused_for_others_and_failure_keeps_old_index(
    telegram, engine, small_corpus, tmp_path
):
    empty = tmp_path / "empty"
    empty.mkdir()
    settings = dataclasses.replace(small_corpus, corpus_dir=empty)
    async with start_bot(settings, engine) as application:
        telegram.send(telegram.user(50, "zh"), "/reindex")
        [refused] = await telegram.replies(50)
        assert refused["text"] == "只有机器人的管理员才能重建索引。"

        telegram.send(telegram.user(ADMIN), "/reindex")
        [status] = await telegram.replies(ADMIN)
        failed = await telegram.wait_for(
            lambda: (
                (m := telegram.message(ADMIN, status["message_id"]))["text"].startswith(
                    "The rebuild failed"
                )
                and m
            ),
            timeout=30,
        )
        assert "No passages found" in failed["text"]
        assert application.bot_data["qabot"].generation == 0
        telegram.send(telegram.user(51), EN_QUESTION)
        [answer] = await telegram.replies(51)
        assert "Yangtze" in answer["text"]


# -- faults and load ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_flood_control_and_server_errors_delay_but_never_lose_replies(telegram, qabot):
    telegram.fail("sendMessage", 429, retry_after=1)
    started = time.monotonic()
    telegram.send(telegram.user(60), EN_QUESTION)
    [reply] = await telegram.replies(60, timeout=15)
    assert "Yangtze" in reply["text"] and time.monotonic() - started >= 1

    telegram.fail("sendMessage", 502)
    telegram.fail("sendMessage", 500)
    telegram.fail("getUpdates", 503)
    telegram.drop("getUpdates")
    telegram.send(telegram.user(61), ZH_QUESTION)
    [reply] = await telegram.replies(61, timeout=20)
    assert "1.52亿元" in reply["text"]
    statuses = [c.status for c in telegram.calls_to("sendMessage")]
    assert statuses == [429, 200, 502, 500, 200]
    # A send whose connection breaks after it went out is not repeated (docs/bot.md,
    # "Delivery"): Telegram may have delivered it, and a repeat would be a duplicate.


@pytest.mark.asyncio
async def test_burst_of_100_updates_from_20_chats_answered_exactly_once(
    telegram, qabot, bot_settings
):
    questions = [EN_QUESTION, ZH_QUESTION, "/help", NO_MATCH, "/sources"]
    users = [telegram.user(100 + n, "zh" if n % 2 else "en") for n in range(20)]
    updates = [telegram.send(users[n % 20], questions[n % 5]) for n in range(100)]
    await telegram.wait_for(lambda: len(telegram.sent()) >= 100, timeout=60)
    await telegram.wait_for(lambda: telegram.acknowledged >= updates[-1]["update_id"])
    await telegram.quiet(1.0)
    assert len(telegram.sent()) == 100
    answered = [
        r["reply_to_message"]["message_id"] for r in telegram.sent() if "reply_to_message" in r
    ]
    assert answered == []  # private chats: no quotes, so count per chat instead
    assert {u["id"]: len(telegram.sent(u["id"])) for u in users} == {u["id"]: 5 for u in users}
    # every question logged once, written concurrently from 20 chats (not /help, /sources)
    log = FeedbackStore(open_database(bot_settings.database)).stats()
    assert log.total == 60 and log.declined == [(NO_MATCH, 20)]


async def _bot_process(settings, log_file):
    """``qabot run`` in its own process, configured as a user would, through the environment."""
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": settings.telegram_token,
        "TELEGRAM_API_BASE_URL": settings.telegram_base_url,
        "QABOT_INDEX_DIR": str(settings.index_dir),
        "QABOT_MODEL_DIR": str(settings.model_dir),
        "QABOT_DATABASE": str(settings.database),
        "HF_HUB_OFFLINE": "1",
    }
    qabot = Path(sys.executable).with_name("qabot")
    return await asyncio.create_subprocess_exec(
        str(qabot), "run", env=env, stdout=log_file, stderr=log_file
    )


@pytest.mark.asyncio
async def test_a_rejected_or_revoked_token_ends_the_bot_with_one_line_and_no_traceback(
    telegram, bot_settings, tmp_path
):
    """What ``qabot run`` prints when Telegram refuses its token at start, or mid-run."""
    said = {}
    for case in ("rejected", "revoked"):
        settings = bot_settings
        if case == "rejected":
            settings = dataclasses.replace(bot_settings, telegram_token="999:wrong-Secret")
        log_path = tmp_path / f"{case}.log"
        with open(log_path, "ab") as log_file:
            bot = await _bot_process(settings, log_file)
            try:
                if case == "revoked":
                    telegram.send(telegram.user(7), EN_QUESTION)
                    await telegram.replies(7, timeout=60)
                    telegram.token = "123456:revoked-in-botfather"
                assert await asyncio.wait_for(bot.wait(), 60) == 1
            finally:
                if bot.returncode is None:
                    bot.kill()
        said[case] = log_path.read_text()
    assert "Telegram rejected the token in TELEGRAM_BOT_TOKEN" in said["rejected"]
    assert "Telegram stopped accepting the token" in said["revoked"]
    secrets = ["wrong-secret", bot_settings.telegram_token.rpartition(":")[2].lower()]
    for case, text in said.items():
        assert "Traceback" not in text, f"{case}:\n{text}"
        assert not [s for s in secrets if s in text.lower()], text


@pytest.mark.asyncio
async def test_a_bot_killed_at_random_moments_of_a_burst_loses_no_question(
    telegram, bot_settings, tmp_path
):
    """200 questions, all acknowledged to Telegram within the first polls; the bot is
    SIGKILLed twice at random points of the burst and started again. Every question is
    answered; the only repeats are answers sent just before a kill (at most the updates in
    hand, ``CONCURRENT_UPDATES``, per kill). Set QABOT_KILL_SEED to replay a run."""
    seed = int(os.environ.get("QABOT_KILL_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    questions = [EN_QUESTION, ZH_QUESTION, NO_MATCH, "/help"]
    users = [telegram.user(5000 + n) for n in range(200)]
    for n, user in enumerate(users):
        telegram.send(user, questions[n % len(questions)])
    log_path = tmp_path / "bot.log"
    kills = []
    with open(log_path, "ab") as log_file:
        for run in range(3):
            bot = await _bot_process(bot_settings, log_file)
            try:
                if run < 2:
                    target = len(telegram.sent()) + rng.randint(1, 80)
                    await telegram.wait_for(lambda: len(telegram.sent()) >= target, timeout=120)
                    bot.kill()
                    kills.append((len(telegram.sent()), telegram.acknowledged))
                else:
                    await telegram.wait_for(
                        lambda: all(telegram.sent(u["id"]) for u in users), timeout=180
                    )
                    await telegram.quiet(1.0)
                    bot.terminate()
            except BaseException:
                bot.kill()
                raise
            finally:
                await bot.wait()
    replies = {u["id"]: len(telegram.sent(u["id"])) for u in users}
    lost = [uid for uid, count in replies.items() if count == 0]
    repeated = sum(count - 1 for count in replies.values())
    report = f"seed {seed}, kills at (answers, acknowledged) {kills}, {repeated} repeated"
    assert kills[0][1] == 200, f"the burst should be acknowledged before the first kill: {report}"
    assert lost == [], f"{len(lost)} questions never answered: {report}\n{log_path.read_text()}"
    assert repeated <= 2 * CONCURRENT_UPDATES, report
    print(report)


# -- follow-up questions -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_short_follow_up_in_private_continues_the_previous_answer(telegram, qabot):
    """"效率提高了多少？" alone finds another project's figures; after a question about the
    silicon steel plant it is about that plant."""
    user = telegram.user(80, "zh")
    telegram.send(user, "硅钢超级工厂建在哪里？")
    [first] = await telegram.replies(80)
    assert "武钢二炼钢厂原址" in first["text"]
    telegram.send(user, "效率提高了多少？")
    [_, follow_up] = await telegram.replies(80, 2)
    assert "提升50%以上" in follow_up["text"]
    long_one = "How much will the Huanglian Port cargo throughput be every year?"
    telegram.send(user, long_one)  # a full question stands alone
    [*_, standalone] = await telegram.replies(80, 3)
    assert "1.7 million tons" in standalone["text"]


@pytest.mark.asyncio
async def test_a_group_question_with_half_an_emoji_is_answered(telegram, qabot):
    """A lone surrogate (half an emoji, as a client that cut a text sends it) before the
    mention: the bot still finds its mention and answers, instead of apologising."""
    group = telegram.group_chat()["id"]
    asked = group_message(telegram, telegram.user(23), f"\ud83d 🙂 {BOT} {EN_QUESTION}")
    [reply] = await telegram.replies(group)
    assert reply["reply_to_message"]["message_id"] == asked["message_id"]
    assert "Yangtze" in reply["text"]


@pytest.mark.asyncio
async def test_a_reply_to_an_answer_in_a_group_continues_that_answer(telegram, qabot, engine):
    group, user = telegram.group_chat(), telegram.user(81)
    question = f"{BOT} Which cities are part of the middle Yangtze automobile alliance?"
    telegram.send(user, question, chat=group)
    [answer] = await telegram.replies(group["id"])
    telegram.send(user, "What about shipbuilding?", chat=group, reply_to=answer)
    [_, follow_up] = await telegram.replies(group["id"], 2)
    assert "Yichang, Huanggang" in follow_up["text"]
    alone = engine.ask("What about shipbuilding?", 9)
    assert not (alone.answered and "Yichang, Huanggang" in alone.hits[0].passage.text)


# -- inline mode -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_inline_queries_offer_cited_answers_and_typing_is_debounced(telegram, qabot, engine):
    user = telegram.user(90)
    typed = [telegram.inline(user, text) for text in ("Huang", "Huanglian Port", "Huanglian Port cargo throughput")]
    results = await telegram.wait_for(lambda: telegram.inline_answers(typed[-1]), timeout=20)
    await telegram.quiet(0.6)
    assert [telegram.inline_answers(q) for q in typed[:2]] == [None, None]  # typed on: dropped
    assert len(telegram.calls_to("answerInlineQuery")) == 1
    top = expected_top(engine, "Huanglian Port cargo throughput")
    assert 1 <= len(results) <= 5 and results[0]["title"] == top.document.title
    start, end = top.highlight
    assert top.passage.text[start:end].startswith(results[0]["description"].rstrip("…"))
    message, _ = parse_html(results[0]["input_message_content"]["message_text"])
    assert message.startswith(top.passage.text[start:end]) and "1.7 million tons" in message
    assert f"¶ {top.passage.paragraph}" in message.split("\n")[1]  # the citation
    assert telegram.calls_to("answerInlineQuery")[0].params["cache_time"] == 60

    declined = telegram.inline(user, NO_MATCH)
    [result] = await telegram.wait_for(lambda: telegram.inline_answers(declined), timeout=20)
    assert result["title"] == "No good match in the articles"
    assert "don't cover" in result["input_message_content"]["message_text"]

    blank = telegram.inline(user, "\u200b\u2060")  # nothing visible: no results, no search
    await telegram.wait_for(lambda: telegram.inline_answers(blank) is not None, timeout=20)
    assert telegram.inline_answers(blank) == []


# -- articles added from the chat --------------------------------------------------------

NEW_ARTICLE = """---
title: Zhuzhou opens a rail bearing plant
publisher: Test Daily
date: 2031-03-04
---

The Zhuzhou rail bearing plant opened in March 2031 and employs 870 workers.

It makes bearings for high-speed trains and plans a second line for metro cars by 2033.
"""


@pytest.mark.asyncio
async def test_an_admin_adds_an_article_by_sending_it_and_it_answers_at_once(
    telegram, small_corpus, engine
):
    async with start_bot(small_corpus, engine) as application:
        admin = telegram.user(ADMIN)
        telegram.document(admin, "zhuzhou-bearings.md", NEW_ARTICLE.encode())
        [status] = await telegram.replies(ADMIN, timeout=60)
        done = await telegram.wait_for(
            lambda: (m := telegram.message(ADMIN, status["message_id"]))["text"].startswith("Added")
            and m, timeout=120,
        )
        assert "Zhuzhou opens a rail bearing plant (id zhuzhou-bearings): 1 passage," in done["text"]
        assert (small_corpus.corpus_dir / "zhuzhou-bearings.md").read_text() == NEW_ARTICLE
        telegram.send(admin, "How many workers does the Zhuzhou rail bearing plant employ?")
        [*_, answer] = await telegram.replies(ADMIN, 2, timeout=30)
        assert "870 workers" in answer["text"] and "Zhuzhou opens" in answer["text"]

        telegram.document(admin, "zhuzhou-bearings.md", b"Other text.\n")  # same name
        telegram.document(admin, "copy.md", NEW_ARTICLE.encode())  # same bytes
        telegram.document(admin, "broken.txt", b"\x00\x01binary")
        telegram.document(admin, "slides.pptx", b"PK")
        replies = await telegram.replies(ADMIN, 6, timeout=30)
        refusals = sorted(m["text"] for m in replies[2:])  # handled concurrently
        assert "already an article with the id zhuzhou-bearings" in refusals[0]
        assert "broken.txt cannot be added: " in refusals[1] and "binary" in refusals[1]
        assert "copy.md is the same file as the article zhuzhou-bearings" in refusals[2]
        assert "slides.pptx is not an article file I can read" in refusals[3]
        assert sorted(p.name for p in small_corpus.corpus_dir.iterdir()) == sorted(
            [expected_top(engine, EN_QUESTION).document.source_file, "zhuzhou-bearings.md"]
        )
        assert application.bot_data["qabot"].generation == 1  # one rebuild, for the one add

        telegram.send(admin, "/articles")
        [*_, listing] = await telegram.replies(ADMIN, 7)
        assert "zhuzhou-bearings" in listing["text"] and "Zhuzhou opens" in listing["text"]


@pytest.mark.asyncio
async def test_only_admins_can_add_articles(telegram, small_corpus, engine):
    async with start_bot(small_corpus, engine):
        reader = telegram.user(5)
        telegram.document(reader, "mine.md", NEW_ARTICLE.encode())
        [reply] = await telegram.replies(5)
    assert reply["text"].startswith("Only the bot's administrators can add articles")
    assert not telegram.calls_to("getFile") and not (small_corpus.corpus_dir / "mine.md").exists()


@pytest.mark.asyncio
async def test_an_article_whose_name_holds_half_an_emoji_is_refused_by_name(
    telegram, small_corpus, engine
):
    """A lone surrogate in the file name (no file system can store it) is refused with a
    message that says so, instead of "something went wrong"."""
    before = sorted(p.name for p in small_corpus.corpus_dir.iterdir())
    async with start_bot(small_corpus, engine):
        telegram.document(telegram.user(ADMIN), "report \ud83d.md", NEW_ARTICLE.encode())
        [refusal] = await telegram.replies(ADMIN, timeout=30)
    assert refusal["text"].startswith("report ?.md has a broken character in its name")
    assert sorted(p.name for p in small_corpus.corpus_dir.iterdir()) == before


@pytest.mark.asyncio
async def test_an_article_name_too_long_for_a_file_is_refused_by_name(telegram, small_corpus, engine):
    """A Chinese title of 90 characters is 273 bytes of file name, over the 255 a Linux
    file system takes: the admin is told to shorten it, instead of "something went wrong"."""
    before = sorted(p.name for p in small_corpus.corpus_dir.iterdir())
    async with start_bot(small_corpus, engine):
        telegram.document(telegram.user(ADMIN), "株" * 90 + ".md", NEW_ARTICLE.encode())
        [refusal] = await telegram.replies(ADMIN, timeout=30)
    assert "is too long a name for a file (273 bytes; 255 at most)" in refusal["text"]
    assert sorted(p.name for p in small_corpus.corpus_dir.iterdir()) == before


@pytest.mark.asyncio
async def test_a_failed_add_leaves_the_articles_as_they_were(
    telegram, small_corpus, engine, monkeypatch
):
    async def failing_build(*args, **kwargs):
        raise QabotError("the disk is full")

    monkeypatch.setattr(reindex_module, "build_in_child", failing_build)
    async with start_bot(small_corpus, engine) as application:
        admin = telegram.user(ADMIN)
        telegram.document(admin, "zhuzhou-bearings.md", NEW_ARTICLE.encode())
        [status, undone] = await telegram.replies(ADMIN, 2, timeout=30)
        assert application.bot_data["qabot"].generation == 0  # the old index still answers
    assert "the disk is full" in telegram.message(ADMIN, status["message_id"])["text"]
    assert undone["text"] == "zhuzhou-bearings.md was taken out again, so the articles are as they were."
    assert not (small_corpus.corpus_dir / "zhuzhou-bearings.md").exists()


@pytest.mark.asyncio
async def test_an_article_the_disk_has_no_room_for_is_refused_and_leaves_no_trace(
    telegram, small_corpus, engine, monkeypatch
):
    """ENOSPC while the upload is written into the articles folder: the admin reads why,
    no partial file is left there, nothing is rebuilt, and the bot goes on answering."""
    import tempfile

    real = tempfile.NamedTemporaryFile

    def full_disk(*args, **kwargs):
        handle = real(*args, **kwargs)

        def write(data):
            handle.file.write(data[:10])  # the blocks that fitted
            handle.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        handle.write = write
        return handle

    before = sorted(p.name for p in small_corpus.corpus_dir.iterdir())
    async with start_bot(small_corpus, engine) as application:
        admin = telegram.user(ADMIN)
        monkeypatch.setattr(tempfile, "NamedTemporaryFile", full_disk)
        telegram.document(admin, "zhuzhou & co.md", NEW_ARTICLE.encode())
        [refusal] = await telegram.replies(ADMIN, timeout=30)
        monkeypatch.undo()
        telegram.send(admin, EN_QUESTION)
        [_, answer] = await telegram.replies(ADMIN, 2, timeout=30)
        assert application.bot_data["qabot"].generation == 0
    assert refusal["text"] == (
        "zhuzhou & co.md could not be saved in the articles folder (No space left on device). "
        "Nothing was changed."
    )
    assert answer["text"] != refusal["text"] and "Nothing was changed" not in answer["text"]
    assert sorted(p.name for p in small_corpus.corpus_dir.iterdir()) == before  # no .upload-*


PDF_PARAGRAPHS = [
    "The Xiangtan wind turbine plant opened in May 2031 and builds 640 nacelles a year for "
    "onshore wind farms along the Yangtze.",
    "Its owner plans a blade factory next door; the two plants together will employ 1,300 people.",
]


def buttons(message: dict) -> dict[str, str]:
    """The inline buttons under ``message``: text -> callback data."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return {button["text"]: button["callback_data"] for row in rows for button in row}


@pytest.mark.asyncio
async def test_an_admin_adds_a_pdf_and_removes_it_again_after_confirming(
    telegram, small_corpus, engine
):
    from pdf_files import make_pdf

    question = "How many nacelles does the Xiangtan plant build a year?"
    async with start_bot(small_corpus, engine) as application:
        admin = telegram.user(ADMIN)
        telegram.document(admin, "xiangtan-wind.pdf", make_pdf([PDF_PARAGRAPHS], title="Xiangtan builds nacelles"))
        [status] = await telegram.replies(ADMIN, timeout=60)
        done = await telegram.wait_for(
            lambda: (m := telegram.message(ADMIN, status["message_id"]))["text"].startswith("Added")
            and m, timeout=120,
        )
        assert "Xiangtan builds nacelles (id xiangtan-wind): 1 passage," in done["text"]
        telegram.send(admin, question)
        [*_, answer] = await telegram.replies(ADMIN, 2, timeout=30)
        assert "640 nacelles" in answer["text"] and "Xiangtan builds nacelles" in answer["text"]

        telegram.send(admin, "/remove xiangtan-wind")
        [*_, ask] = await telegram.replies(ADMIN, 3)
        assert ask["text"].startswith("Remove Xiangtan builds nacelles (id xiangtan-wind, 1 passages)?")
        assert (small_corpus.corpus_dir / "xiangtan-wind.pdf").exists()  # nothing changes yet
        telegram.press(admin, ask, buttons(ask)["Remove"])
        removed = await telegram.wait_for(
            lambda: (m := telegram.message(ADMIN, ask["message_id"]))["text"].startswith("Removed")
            and m, timeout=120,
        )
        assert "1 article(s) answer now" in removed["text"] and not buttons(removed)
        assert not (small_corpus.corpus_dir / "xiangtan-wind.pdf").exists()
        [kept] = (small_corpus.corpus_dir / ".removed").iterdir()
        assert kept.name.endswith("-xiangtan-wind.pdf") and f".removed/{kept.name}" in removed["text"]
        telegram.send(admin, question)
        [*_, after] = await telegram.replies(ADMIN, 4, timeout=30)
        assert "640 nacelles" not in after["text"]
        assert application.bot_data["qabot"].generation == 2


@pytest.mark.asyncio
async def test_remove_asks_an_admin_first_and_ignores_anyone_else(telegram, small_corpus, engine):
    article = expected_top(engine, EN_QUESTION).document
    async with start_bot(small_corpus, engine) as application:
        admin, reader = telegram.user(ADMIN), telegram.user(5)
        telegram.send(reader, f"/remove {article.doc_id}")
        [refused] = await telegram.replies(5)
        assert refused["text"] == "Only the bot's administrators can remove articles."
        telegram.send(admin, "/remove")
        telegram.send(admin, "/remove <no-such-id>")
        usage, unknown = await telegram.replies(ADMIN, 2)
        assert usage["text"].startswith("Send /remove followed by an article's id")
        assert unknown["text"] == "No article has the id <no-such-id>. /articles lists the ids."

        telegram.send(admin, f"/remove {article.doc_id}")
        [*_, ask] = await telegram.replies(ADMIN, 3)
        telegram.press(reader, ask, buttons(ask)["Remove"])  # someone else's press
        telegram.press(admin, ask, "rm:y:0123456789abcdef")  # forged data
        await telegram.wait_for(lambda: len(telegram.calls_to("answerCallbackQuery")) == 2)
        alert = telegram.calls_to("answerCallbackQuery")[0].params
        assert alert["text"] == "Only the bot's administrators can remove articles." and alert["show_alert"]
        gone = await telegram.wait_for(lambda: (m := telegram.message(ADMIN, ask["message_id"]))["text"].startswith("That article") and m)
        assert not buttons(gone) and (small_corpus.corpus_dir / article.source_file).exists()

        telegram.send(admin, f"/remove {article.doc_id}")
        [*_, ask] = await telegram.replies(ADMIN, 4)
        telegram.press(admin, ask, buttons(ask)["Keep it"])
        kept = await telegram.wait_for(lambda: (m := telegram.message(ADMIN, ask["message_id"]))["text"] == "Nothing was removed." and m)
        assert not buttons(kept)

        telegram.send(admin, f"/remove {article.doc_id}")  # the only article: the build fails
        [*_, ask] = await telegram.replies(ADMIN, 5)
        telegram.press(admin, ask, buttons(ask)["Remove"])
        [*_, undone] = await telegram.replies(ADMIN, 6, timeout=60)
        assert undone["text"] == f"The file of {article.doc_id} was put back, so the articles are as they were."
        assert "No passages found" in telegram.message(ADMIN, ask["message_id"])["text"]
        assert (small_corpus.corpus_dir / article.source_file).exists()
        assert application.bot_data["qabot"].generation == 0


# -- webhook mode ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def webhook_bot(settings, engine, replica: str = "local"):
    """The bot in webhook mode (as `qabot run` with QABOT_WEBHOOK_URL), on a free port."""
    from servers import free_port

    port = free_port()
    settings = dataclasses.replace(
        settings, webhook_url=f"http://127.0.0.1:{port}/telegram/hook",
        webhook_listen=("127.0.0.1", port), webhook_secret="s3cret_-token", replica=replica,
    )
    application = build_application(settings, engine, network_backoff=0.05)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve_webhook(application, settings, ALLOWED_UPDATES, stop))
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(100):  # bounded: up in well under 10 s
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(base + "/healthz") as health:
                    if health.status == 200:
                        break
            await asyncio.sleep(0.1)
        try:
            yield application, http, base
        finally:
            stop.set()
            await asyncio.wait_for(serving, 30)


@pytest.mark.asyncio
async def test_webhook_mode_answers_signed_updates_once_and_refuses_the_rest(
    telegram, bot_settings, engine
):
    async with webhook_bot(bot_settings, engine) as (application, http, base):
        hook = telegram.webhook
        assert hook["url"] == base + "/telegram/hook" and hook["secret_token"] == "s3cret_-token"
        assert "callback_query" in hook["allowed_updates"]
        async with http.get(base + "/healthz") as health:
            assert health.status == 200

        reader = telegram.user(61)
        update = telegram.send(reader, EN_QUESTION)
        [answer] = await telegram.replies(61, timeout=30)
        assert "Yangtze" in answer["text"]
        telegram.redeliver(update)  # Telegram did not see our 200 and sends it again
        await telegram.wait_for(lambda: len(telegram.deliveries) == 2)
        await telegram.quiet(0.5)
        assert len(telegram.sent(61)) == 1 and telegram.deliveries[1] == (update["update_id"], 200)

        forged = {"update_id": 999, "message": {**update["message"], "text": "/start"}}
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "guess"}):
            async with http.post(base + "/telegram/hook", json=forged, headers=headers) as refused:
                assert refused.status == 403
        signed = {"X-Telegram-Bot-Api-Secret-Token": "s3cret_-token"}
        async with http.post(base + "/telegram/hook", data=b"{not json", headers=signed) as bad:
            assert bad.status == 400
        await telegram.quiet(0.5)
        assert len(telegram.sent(61)) == 1  # nothing answered the forged ones

        async with http.get(base + "/metrics") as scraped:
            metrics = await scraped.text()
        assert scraped.headers["Content-Type"].startswith("text/plain")
        assert 'qabot_questions_total{outcome="answered"} 1.0' in metrics
        assert 'qabot_webhook_updates_total{result="redelivered"} 1.0' in metrics
        assert 'qabot_webhook_updates_total{result="refused"} 3.0' in metrics
        assert "qabot_answer_seconds_bucket" in metrics
        assert f'qabot_index_info{{generation="{engine.generation}"}} 1.0' in metrics


@pytest.mark.asyncio
async def test_a_signed_post_that_is_no_update_is_refused_and_not_kept(telegram, bot_settings, engine):
    """Valid JSON with an update number but no update in it (a message that is a number):
    refused with 400, not journaled, so it cannot stop the next start (which queues the
    journal's unhandled updates again)."""
    signed = {"X-Telegram-Bot-Api-Secret-Token": "s3cret_-token"}
    async with webhook_bot(bot_settings, engine) as (application, http, base):
        for payload in ({"update_id": 77, "message": 5}, {"update_id": 78, "message": {"chat": "x"}}):
            async with http.post(base + "/telegram/hook", json=payload, headers=signed) as refused:
                assert refused.status == 400
        telegram.send(telegram.user(62), EN_QUESTION)
        [answer] = await telegram.replies(62, timeout=30)
        assert "Yangtze" in answer["text"]
        await telegram.quiet(0.5)
        pending = await asyncio.to_thread(application.journal.pending)
    assert [u["update_id"] for u in pending] == []


@pytest.mark.asyncio
async def test_a_recorded_update_that_is_no_update_does_not_stop_the_next_start(
    telegram, bot_settings, engine, caplog
):
    """The journal holds a payload python-telegram-bot cannot read (journaled by an older
    webhook, or edited in the database): the bot starts anyway, crosses it off with a
    warning, and answers the update recorded beside it."""
    from bot.journal import UpdateJournal

    question = telegram.new_update(telegram.user(63), EN_QUESTION)
    bot_id = int(bot_settings.telegram_token.split(":")[0])
    journal = UpdateJournal(open_database(bot_settings.database_address), bot_id=bot_id)
    journal.record([{"update_id": question["update_id"] + 1, "message": 5}, question])
    async with start_bot(bot_settings, engine) as application:
        [answer] = await telegram.replies(63, timeout=30)
        await telegram.quiet(0.5)
        pending = await asyncio.to_thread(application.journal.pending)
    assert "Yangtze" in answer["text"]
    assert pending == []
    assert "Dropping a recorded update: it is not one" in caplog.text


@pytest.mark.asyncio
async def test_more_votes_and_follow_ups_work_whichever_replica_gets_them(
    telegram, bot_settings, engine, monkeypatch
):
    """Two replicas share the database; Telegram's deliveries are routed to one, then the
    other: the second serves presses and a follow-up on the first one's answer."""
    from bot.state import BotState

    asked_within = []
    ask = BotState.ask

    async def spy(self, question, top_k, within=None):
        asked_within.append((question, within))
        return await ask(self, question, top_k, within)

    monkeypatch.setattr(BotState, "ask", spy)
    async with webhook_bot(bot_settings, engine, "a") as (first, _, base_a), \
            webhook_bot(bot_settings, engine, "b") as (second, _, base_b):
        route = lambda base: telegram.webhook.update(url=base + "/telegram/hook")  # noqa: E731
        reader = telegram.user(71)
        route(base_a)
        telegram.send(reader, "How many big industrial companies are in the light alloy park?")
        [answer] = await telegram.replies(71, timeout=30)
        more = buttons(answer)["More ›"]

        route(base_b)
        telegram.press(reader, answer, more)
        page = await telegram.wait_for(
            lambda: (m := telegram.message(71, answer["message_id"]))["text"].startswith("Results")
            and m, timeout=30,
        )
        assert list(buttons(page)) == ["👍", "👎", "‹ Back", "More ›"]
        telegram.press(reader, page, buttons(page)["👍"])
        await telegram.wait_for(lambda: len(telegram.calls_to("answerCallbackQuery")) == 2)
        assert telegram.calls_to("answerCallbackQuery")[1].params["text"].startswith("Thanks")
        telegram.send(reader, "How much will its expansion cost?", reply_to=answer)
        [*_, follow_up] = await telegram.replies(71, 2, timeout=30)
        assert asked_within[-1] == ("How much will its expansion cost?", "jiulongpo-western-hydrogen-valley")
        assert "2.75 billion" in follow_up["text"]  # alone, it finds another article
        handled = [first.bot_data["qabot"].metrics, second.bot_data["qabot"].metrics]
        assert [m.questions.labels("answered")._value.get() for m in handled] == [1, 1]


@pytest.mark.asyncio
async def test_a_replica_answers_what_a_stopped_replica_left_in_the_journal(
    telegram, bot_settings, engine
):
    """A replica stopped with an update recorded but not yet handled (and was not started
    again): a running replica takes it over."""
    from bot.journal import UpdateJournal

    update = telegram.new_update(telegram.user(91), EN_QUESTION)
    UpdateJournal(open_database(bot_settings.database), int(telegram.token.split(":")[0]),
                  owner="scaled-down").record([update])
    async with start_bot(bot_settings, engine) as application:
        # (the start-up already takes it: nothing of its own is pending; shown by adopt alone)
        [reply] = await telegram.replies(91, timeout=30)
        assert "Yangtze" in reply["text"]
        left = telegram.new_update(telegram.user(92), EN_QUESTION)
        UpdateJournal(open_database(bot_settings.database), int(telegram.token.split(":")[0]),
                      owner="scaled-down").record([left])
        adopter = asyncio.create_task(application.adopt(0.2))
        try:
            [late] = await telegram.replies(92, timeout=30)
        finally:
            adopter.cancel()
        assert "Yangtze" in late["text"]
        await telegram.quiet(0.5)
        assert len(telegram.sent(91)) == 1 and len(telegram.sent(92)) == 1
