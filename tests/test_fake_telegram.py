"""The fake Bot API server behaves like Telegram where the bot's tests rely on it."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import pytest_asyncio
from fake_telegram import ApiError, FakeTelegram, parse_html, text_entities
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter


@pytest_asyncio.fixture
async def telegram():
    async with FakeTelegram() as server:
        yield server


@pytest_asyncio.fixture
async def bot(telegram):
    async with Bot(telegram.token, base_url=telegram.base_url) as bot:
        yield bot


# -- HTML parse mode ---------------------------------------------------------------------


def test_html_gives_text_and_entities_with_utf16_offsets():
    text, entities = parse_html(
        '😀 <b>武汉 &amp; <i>Wuhan</i></b> <a href="https://x.test/?a=1&amp;b=2">link</a>'
    )
    assert text == "😀 武汉 & Wuhan link"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 10},
        {"type": "italic", "offset": 8, "length": 5},
        {"type": "text_link", "offset": 14, "length": 4, "url": "https://x.test/?a=1&b=2"},
    ]


def test_html_decodes_numeric_entities_and_keeps_bare_greater_than():
    assert (
        parse_html("&#20013;&#x6587; &lt;tag&gt; &quot;q&quot; a > b")[0] == '中文 <tag> "q" a > b'
    )


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("<div>x</div>", 'unsupported start tag "div"'),
        ("<b>x", 'can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'expected "</i>", found "</b>"'),
        ("x</b>", 'unexpected end tag "b"'),
        ("a < b", "unclosed start tag"),
        ("a < b > c", "unsupported start tag"),
        ("<b", "unclosed start tag"),
        ("fish & chips", "unsupported HTML entity"),
        ("&nbsp;", "unsupported HTML entity"),
        ("<a>x</a>", "href"),
    ],
)
def test_malformed_html_is_rejected_like_telegram(source, reason):
    with pytest.raises(ApiError) as error:
        parse_html(source)
    assert error.value.status == 400
    assert error.value.description.startswith("Bad Request: can't parse entities: ")
    assert reason in error.value.description


def test_incoming_text_gets_command_and_mention_entities():
    assert text_entities("/ask@qa_test_bot what? @someone_else") == [
        {"type": "bot_command", "offset": 0, "length": 16},
        {"type": "mention", "offset": 23, "length": 13},
    ]


# -- the API through python-telegram-bot -----------------------------------------------


@pytest.mark.asyncio
async def test_get_me_and_wrong_token(telegram, bot):
    me = await bot.get_me()
    assert me.username == "qa_test_bot"
    with pytest.raises(InvalidToken):
        async with Bot("999:wrong", base_url=telegram.base_url):
            pass


@pytest.mark.asyncio
async def test_send_message_decodes_json_values_and_records_reply(telegram, bot):
    user = telegram.user(7)
    update = telegram.send(user, "hi")
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("More", callback_data="p:0:k:1")]])
    sent = await bot.send_message(
        7,
        "<b>Bold</b> &amp; plain",
        parse_mode="HTML",
        reply_markup=markup,
        reply_to_message_id=update["message"]["message_id"],
    )
    assert sent.text == "Bold & plain"
    assert sent.entities[0].type == "bold"
    recorded = telegram.sent(7)[0]
    assert recorded["reply_markup"] == {
        "inline_keyboard": [[{"text": "More", "callback_data": "p:0:k:1"}]]
    }
    assert recorded["reply_to_message"]["text"] == "hi"
    assert telegram.calls_to("sendMessage")[0].params["chat_id"] == 7


@pytest.mark.asyncio
async def test_send_message_limits(telegram, bot):
    await bot.send_message(1, "x" * 4096)
    await bot.send_message(1, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")  # tags don't count
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(1, "x" * 4097)
    with pytest.raises(BadRequest, match="(?i)too long"):
        await bot.send_message(1, "😀" * 2049)  # 4098 UTF-16 units
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(1, "<b>open", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)text is empty"):
        await bot.send_message(1, "<b> </b>", parse_mode="HTML")


@pytest.mark.asyncio
async def test_edit_message_text(telegram, bot):
    sent = await bot.send_message(3, "one")
    edited = await bot.edit_message_text("<i>two</i>", 3, sent.message_id, parse_mode="HTML")
    assert edited.text == "two"
    assert telegram.message(3, sent.message_id)["text"] == "two"
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("<i>two</i>", 3, sent.message_id, parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", 3, 999)


@pytest.mark.asyncio
async def test_commands_chat_action_and_callback_answers(telegram, bot):
    await bot.set_my_commands([("help", "Help")], language_code="zh")
    await bot.send_chat_action(5, "typing")
    await bot.answer_callback_query("42", text="Expired")
    assert telegram.commands == {"zh": [{"command": "help", "description": "Help"}]}
    assert telegram.calls_to("answerCallbackQuery")[0].params == {
        "callback_query_id": "42",
        "text": "Expired",
    }


@pytest.mark.asyncio
async def test_updates_are_acknowledged_by_offset(telegram, bot):
    user = telegram.user(9)
    telegram.send(user, "first")
    telegram.send(user, "second", chat=telegram.group_chat())
    first = await bot.get_updates(timeout=0)
    assert [u.message.text for u in first] == ["first", "second"]
    assert first[1].message.chat.type == "supergroup"
    again = await bot.get_updates(offset=first[0].update_id + 1, timeout=0)
    assert [u.message.text for u in again] == ["second"]
    assert telegram.acknowledged == first[0].update_id
    assert await bot.get_updates(offset=first[1].update_id + 1, timeout=0) == ()


@pytest.mark.asyncio
async def test_long_poll_waits_for_timeout_or_next_update(telegram, bot):
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 3

    async def later():
        await asyncio.sleep(0.3)
        telegram.send(telegram.user(1), "ping")

    started = time.monotonic()
    task = asyncio.create_task(later())
    updates = await bot.get_updates(timeout=5)
    await task
    assert [u.message.text for u in updates] == ["ping"]
    assert time.monotonic() - started < 2


@pytest.mark.asyncio
async def test_injected_non_text_callback_and_edit_updates(telegram, bot):
    user = telegram.user(4, language_code="zh-hans")
    sticker = telegram.send(user, sticker=telegram.sticker())
    telegram.send(user, photo=telegram.photo())
    telegram.send(user, voice=telegram.voice())
    sent = await bot.send_message(4, "answer")
    telegram.press(user, telegram.sent(4)[0], "p:0:abc:1")
    telegram.edit(sticker["message"] | {"text": "x"}, "/ask new")
    updates = await bot.get_updates(timeout=0)
    assert updates[0].message.sticker.emoji == "👍"
    assert updates[1].message.photo and updates[2].message.voice
    assert updates[3].callback_query.data == "p:0:abc:1"
    assert updates[3].callback_query.message.message_id == sent.message_id
    assert updates[4].edited_message.text == "/ask new"
    assert updates[4].edited_message.entities[0].type == "bot_command"
    assert updates[0].effective_user.language_code == "zh-hans"


@pytest.mark.asyncio
async def test_faults_429_5xx_and_slow(telegram, bot):
    telegram.fail("sendMessage", 429, retry_after=3)
    with pytest.raises(RetryAfter, match="Retry in 3"):
        await bot.send_message(1, "x")
    telegram.fail("sendMessage", 502)
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(1, "x")
    telegram.fail("sendMessage", 500, times=1)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(1, "x")
    telegram.drop("sendMessage")
    with pytest.raises(NetworkError):
        await bot.send_message(1, "x")
    telegram.slow("sendMessage", 0.5)
    started = time.monotonic()
    await bot.send_message(1, "late")
    assert time.monotonic() - started >= 0.5
    assert [c.status for c in telegram.calls_to("sendMessage")] == [429, 502, 500, 0, 200]


@pytest.mark.asyncio
async def test_json_bodies_are_accepted(telegram):
    async with aiohttp.ClientSession() as session:
        url = f"{telegram.base_url}{telegram.token}/sendMessage"
        async with session.post(
            url, json={"chat_id": 2, "text": "<b>json</b>", "parse_mode": "HTML"}
        ) as response:
            body = await response.json()
        async with session.post(
            url, json={"chat_id": 2, "text": "<x>", "parse_mode": "HTML"}
        ) as response:
            error = await response.json()
    assert body["ok"] and body["result"]["text"] == "json"
    assert response.status == 400 and error["description"].startswith(
        "Bad Request: can't parse entities"
    )
