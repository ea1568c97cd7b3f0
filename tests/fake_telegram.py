"""A fake Telegram Bot API server for end-to-end tests of the bot.

It speaks the part of the Bot API the bot uses (getMe, deleteWebhook, getUpdates with
offset acknowledgement and long polling, sendMessage, editMessageText,
answerCallbackQuery, setMyCommands, sendChatAction), validates message HTML the way
Telegram does, records every call, and lets a test inject updates (messages, stickers,
callback queries, edits) and faults (429 with ``retry_after``, 5xx, slow answers).

It runs with aiohttp on 127.0.0.1 and a free port; point the bot at :attr:`base_url`.

Deliberate differences from Telegram, all on the strict side: a bare ``&`` that starts no
entity is refused (Telegram keeps it as text), and lengths are counted in UTF-16 units.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import re
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MAX_TEXT = 4096
ALLOWED_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "tg-spoiler",
    "span",
    "blockquote",
    "tg-emoji",
}
ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
#: Parameters that are strings on the wire even when they look like JSON.
STRING_PARAMS = {
    "text",
    "file_id",
    "inline_query_id",
    "caption",
    "parse_mode",
    "callback_query_id",
    "action",
    "language_code",
    "url",
    "inline_message_id",
    "description",
    "short_description",
    "name",
}
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_ATTRIBUTE = re.compile(r"""\s*([A-Za-z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{5,32})?")
_MENTION = re.compile(r"(?<![A-Za-z0-9_])@[A-Za-z0-9_]{5,32}")


class ApiError(Exception):
    """A Bot API failure: the HTTP status and Telegram's description."""

    def __init__(self, status: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


@dataclass
class Call:
    """One request the bot made, as received, and what the fake answered."""

    method: str
    params: dict[str, Any]
    status: int = 200
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    status: int = 0
    retry_after: int | None = None
    delay: float = 0.0
    description: str = ""
    drop: bool = False  # close the connection without answering
    processed: bool = False  # with drop: carry the call out first (Telegram did, the answer was lost)


def utf16_len(value: str) -> int:
    return len(value.encode("utf-16-le", "surrogatepass")) // 2  # a lone surrogate is one unit


def parse_html(source: str) -> tuple[str, list[dict]]:
    """Telegram's HTML parse mode: the plain text and its entities, or a 400 ApiError."""
    out: list[str] = []
    stack: list[tuple[str, int, dict]] = []  # (tag, utf16 offset, entity extras)
    entities: list[dict] = []
    position = 0  # in UTF-16 units of the output
    i = 0

    def fail(reason: str) -> ApiError:
        return ApiError(400, f"Bad Request: can't parse entities: {reason}")

    def byte_offset(index: int) -> int:
        return len(source[:index].encode())

    while i < len(source):
        char = source[i]
        if char == "&":
            match = _ENTITY.match(source, i)
            if not match:
                raise fail(f"unsupported HTML entity at byte offset {byte_offset(i)}")
            name, decimal, hexadecimal = match.groups()
            code = int(decimal) if decimal else int(hexadecimal, 16) if hexadecimal else None
            decoded = _NAMED[name] if name else chr(code) if code and code <= 0x10FFFF else None
            if decoded is None:
                raise fail(f"invalid character reference at byte offset {byte_offset(i)}")
            out.append(decoded)
            position += utf16_len(decoded)
            i = match.end()
        elif char == "<":
            end = source.find(">", i)
            if end == -1:
                raise fail(f"unclosed start tag at byte offset {byte_offset(i)}")
            inside = source[i + 1 : end]
            if inside.startswith("/"):
                name = inside[1:].strip().lower()
                if not stack:
                    raise fail(f'unexpected end tag "{name}" at byte offset {byte_offset(i)}')
                open_tag, start, extras = stack.pop()
                if name != open_tag:
                    raise fail(
                        f"unmatched end tag at byte offset {byte_offset(i)}, expected "
                        f'"</{open_tag}>", found "</{name}>"'
                    )
                if position > start:
                    entities.append(
                        {
                            "type": ENTITY_TYPES[open_tag],
                            "offset": start,
                            "length": position - start,
                            **extras,
                        }
                    )
            else:
                match = _TAG_NAME.match(inside)
                name = match.group(0).lower() if match else ""
                if name not in ALLOWED_TAGS:
                    raise fail(f'unsupported start tag "{name}" at byte offset {byte_offset(i)}')
                attributes = _attributes(inside[len(name) :])
                stack.append((name, position, _entity_extras(name, attributes, fail)))
            i = end + 1
        else:
            out.append(char)
            position += utf16_len(char)
            i += 1
    if stack:
        raise fail(f'can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _attributes(raw: str) -> dict[str, str]:
    attributes = {}
    for match in _ATTRIBUTE.finditer(raw):
        if match.group(1):
            value = next((v for v in match.groups()[1:] if v is not None), "")
            attributes[match.group(1).lower()] = html.unescape(value)
    return attributes


def _entity_extras(tag: str, attributes: dict[str, str], fail: Callable[[str], ApiError]) -> dict:
    if tag == "a":
        url = attributes.get("href", "")
        if not url:
            raise fail('tag "a" must have an href attribute')
        return {"url": url}
    if tag == "span" and attributes.get("class") != "tg-spoiler":
        raise fail('tag "span" must have class "tg-spoiler"')
    if tag == "tg-emoji":
        return {"custom_emoji_id": attributes.get("emoji-id", "")}
    if tag == "blockquote" and "expandable" in attributes:
        return {"type": "expandable_blockquote"}
    return {}


def text_entities(text: str) -> list[dict]:
    """The entities Telegram adds to an incoming message: a leading command, mentions."""
    entities = []
    command = _COMMAND.match(text)
    if command:
        entities.append({"type": "bot_command", "offset": 0, "length": utf16_len(command.group())})
    for mention in _MENTION.finditer(text):
        entities.append(
            {
                "type": "mention",
                "offset": utf16_len(text[: mention.start()]),
                "length": utf16_len(mention.group()),
            }
        )
    return entities


class FakeTelegram:
    """The fake server. Use ``async with FakeTelegram() as telegram:`` in a test."""

    def __init__(
        self, token: str = "123456:TEST-token_secret", username: str = "qa_test_bot"
    ) -> None:
        self.token = token
        self.bot = {
            "id": int(token.split(":")[0]),
            "is_bot": True,
            "first_name": "QA Test",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.calls: list[Call] = []
        self.commands: dict[str, list[dict]] = {}
        self.acknowledged = 0  # the highest update id the bot confirmed (by a later offset)
        self._updates: list[dict] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count] = defaultdict(lambda: itertools.count(1))
        self._callback_ids = itertools.count(1)
        self._messages: dict[tuple[int, int], dict] = {}
        self._chats: dict[int, dict] = {}
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._inline_answers: dict[str, list[dict]] = {}
        self._files: dict[str, bytes] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.port = 0
        #: setWebhook's parameters while a webhook is set (then updates are POSTed to it).
        self.webhook: dict | None = None
        #: Every webhook POST: (update_id, HTTP status, or 0 when the connection failed).
        self.deliveries: list[tuple[int, int]] = []
        self._deliverer: asyncio.Task | None = None

    # -- running -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeTelegram:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._closing = True  # ends pending long polls, which cleanup() would wait for
        await self._notify()
        if self._deliverer:
            self._deliverer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._deliverer
        if self._runner:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        """What the bot's ``base_url`` should be; the token is appended by the bot."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """Where the bot downloads files from (``getFile``'s ``file_path`` is appended)."""
        return f"http://127.0.0.1:{self.port}/file/bot"

    # -- injecting updates ---------------------------------------------------------------

    def user(self, user_id: int, language_code: str = "en", first_name: str = "Ann") -> dict:
        return {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": language_code,
        }

    def private_chat(self, user: dict) -> dict:
        return {"id": user["id"], "type": "private", "first_name": user["first_name"]}

    def group_chat(self, chat_id: int = -1001234567890, title: str = "Readers") -> dict:
        return {"id": chat_id, "type": "supergroup", "title": title}

    def send(
        self,
        user: dict,
        text: str | None = None,
        *,
        chat: dict | None = None,
        reply_to: dict | None = None,
        **content: Any,
    ) -> dict:
        """A user's new message (text, or other content like ``sticker=...``) as an update."""
        message = self._message(user, chat or self.private_chat(user), text, reply_to, content)
        self._messages[(message["chat"]["id"], message["message_id"])] = message
        return self._push({"message": message})

    def new_update(self, user: dict, text: str) -> dict:
        """An update with a new private message from ``user``, *not* queued: for a load
        generator that posts it to the bot's webhook itself."""
        message = self._message(user, self.private_chat(user), text, None, {})
        self._messages[(message["chat"]["id"], message["message_id"])] = message
        return {"update_id": next(self._update_ids), "message": message}

    def edit(self, message: dict, text: str) -> dict:
        """The user edits their earlier ``message`` to ``text``."""
        edited = {
            **message,
            "text": text,
            "entities": text_entities(text),
            "edit_date": int(time.time()),
        }
        if not edited["entities"]:
            del edited["entities"]
        self._messages[(edited["chat"]["id"], edited["message_id"])] = edited
        return self._push({"edited_message": edited})

    def press(self, user: dict, message: dict, data: str) -> dict:
        """The user taps an inline button with callback ``data`` under the bot's ``message``."""
        query = {
            "id": str(next(self._callback_ids)),
            "from": user,
            "chat_instance": f"ci{message['chat']['id']}",
            "message": message,
            "data": data,
        }
        return self._push({"callback_query": query})

    def document(self, user: dict, name: str, data: bytes, chat: dict | None = None) -> dict:
        """The user sends a file: a message with a document the bot can fetch by getFile."""
        file_id = f"doc{next(self._callback_ids)}"
        self._files[file_id] = data
        document = {"file_id": file_id, "file_unique_id": file_id, "file_name": name,
                    "file_size": len(data)}
        return self.send(user, chat=chat, document=document)

    def inline(self, user: dict, query: str) -> dict:
        """The user types ``@bot query`` in any chat: an inline query update."""
        inline = {"id": str(next(self._callback_ids)), "from": user, "query": query, "offset": ""}
        return self._push({"inline_query": inline})

    def inline_answers(self, query: dict) -> list[dict] | None:
        """The results the bot gave to ``query`` (an update from :meth:`inline`), validated
        like Telegram does (at most 50, unique ids, message HTML that parses)."""
        return self._inline_answers.get(query["inline_query"]["id"])

    def sticker(self) -> dict:
        return {
            "file_id": "CAAC-sticker",
            "file_unique_id": "st1",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "👍",
        }

    def photo(self) -> list[dict]:
        return [{"file_id": "AgAC-photo", "file_unique_id": "ph1", "width": 90, "height": 90}]

    def voice(self) -> dict:
        return {
            "file_id": "AwAC-voice",
            "file_unique_id": "vo1",
            "duration": 2,
            "mime_type": "audio/ogg",
        }

    # -- faults --------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        status: int,
        *,
        times: int = 1,
        retry_after: int | None = None,
        description: str = "",
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error."""
        for _ in range(times):
            self._faults[method].append(Fault(status, retry_after, 0.0, description))

    def drop(self, method: str, *, times: int = 1, processed: bool = False) -> None:
        """Hang up on the next ``times`` calls of ``method``: a network error for the client.
        ``processed``: carry each call out first, as when Telegram sent the message and the
        connection broke before its answer came back."""
        for _ in range(times):
            self._faults[method].append(Fault(drop=True, processed=processed))

    def slow(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` only after ``seconds``."""
        for _ in range(times):
            self._faults[method].append(Fault(delay=seconds))

    # -- reading what happened -----------------------------------------------------------

    def calls_to(self, method: str, *, ok: bool | None = None) -> list[Call]:
        return [
            c for c in self.calls if c.method == method and (ok is None or (c.status == 200) == ok)
        ]

    def sent(self, chat_id: int | None = None) -> list[dict]:
        """Messages the bot sent (as they are now, after edits), oldest first."""
        return [
            m
            for (chat, _), m in self._messages.items()
            if m["from"]["id"] == self.bot["id"] and (chat_id is None or chat == chat_id)
        ]

    def message(self, chat_id: int, message_id: int) -> dict:
        return self._messages[(chat_id, message_id)]

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``condition()`` is truthy (checked after every call); return its value."""

        async def until() -> Any:
            async with self._changed:
                while not (value := condition()):
                    await self._changed.wait()
                return value

        return await asyncio.wait_for(until(), timeout)

    async def replies(self, chat_id: int, count: int = 1, timeout: float = 10.0) -> list[dict]:
        """Wait for the bot's first ``count`` messages in ``chat_id``."""

        def enough() -> list[dict] | None:
            found = self.sent(chat_id)
            return found[:count] if len(found) >= count else None

        return await self.wait_for(enough, timeout)

    async def quiet(self, seconds: float = 0.5) -> None:
        """Let the bot work for a moment (to check that it does *not* answer)."""
        await asyncio.sleep(seconds)

    # -- the API -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await _params(request)
        call = Call(method, params)
        self.calls.append(call)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            fault = self._faults[method].popleft() if self._faults[method] else None
            if fault and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault and fault.drop:
                if fault.processed and (handler := getattr(self, f"_api_{method}", None)):
                    await handler(params)
                call.status = 0
                request.transport.close()
                await self._notify()
                return web.Response()  # never reaches the client
            if fault and fault.status:
                raise ApiError(
                    fault.status,
                    fault.description or _default_description(fault.status, fault.retry_after),
                    {"retry_after": fault.retry_after} if fault.retry_after else None,
                )
            handler = getattr(self, f"_api_{method}", None)
            if handler is None:
                raise ApiError(404, "Not Found")
            result = await handler(params)
            body = {"ok": True, "result": result}
        except ApiError as exc:
            call.status = exc.status
            body = {"ok": False, "error_code": exc.status, "description": exc.description}
            if exc.parameters:
                body["parameters"] = exc.parameters
        await self._notify()
        return web.json_response(body, status=call.status)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _api_getMe(self, _: dict) -> dict:
        return self.bot

    async def _api_deleteWebhook(self, _: dict) -> bool:
        self.webhook = None
        return True

    async def _api_setWebhook(self, params: dict) -> bool:
        secret = params.get("secret_token") or ""
        if not re.fullmatch(r"[A-Za-z0-9_-]{0,256}", secret):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if not params.get("url", "").startswith(("https://", "http://")):
            raise ApiError(400, "Bad Request: bad webhook: an HTTPS URL must be provided")
        self.webhook = params
        if self._deliverer is None:
            self._deliverer = asyncio.get_running_loop().create_task(self._deliver())
        return True

    def redeliver(self, update: dict) -> None:
        """Send ``update`` again, as Telegram does when it did not see the webhook's answer."""
        self._updates.append(update)
        asyncio.get_running_loop().create_task(self._notify())

    async def _deliver(self, connections: int = 8) -> None:
        """POST queued updates to the webhook, up to ``connections`` at once (Telegram's
        max_connections), each until it gets a 2xx; failures are retried after a pause."""
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            in_flight: set[asyncio.Task] = set()
            while not self._closing:
                while self.webhook and self._updates and len(in_flight) < connections:
                    update = self._updates.pop(0)
                    in_flight.add(asyncio.create_task(self._post(session, update)))
                if in_flight:
                    done, in_flight = await asyncio.wait(in_flight, timeout=0.05,
                                                         return_when=asyncio.FIRST_COMPLETED)
                else:
                    async with self._changed:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(self._changed.wait(), 0.5)

    async def _post(self, session, update: dict) -> None:
        import aiohttp

        headers = {"Content-Type": "application/json"}
        if self.webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook["secret_token"]
        try:
            async with session.post(self.webhook["url"], data=json.dumps(update), headers=headers) as answer:
                status = answer.status
        except (aiohttp.ClientError, asyncio.TimeoutError):
            status = 0
        self.deliveries.append((update["update_id"], status))
        if not 200 <= status < 300:
            await asyncio.sleep(0.2)
            self._updates.append(update)  # Telegram tries again later
        await self._notify()

    async def _api_getUpdates(self, params: dict) -> list[dict]:
        if self.webhook:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                           "use deleteWebhook to delete the webhook first")
        offset = int(params.get("offset") or 0)
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            self.acknowledged = max(self.acknowledged, offset - 1)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not self._updates and not self._closing and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
                except asyncio.TimeoutError:
                    break
        return self._updates[:limit]

    async def _api_sendMessage(self, params: dict) -> dict:
        chat_id = int(params["chat_id"])
        text, entities = self._checked_text(params)
        reply = params.get("reply_parameters") or {}
        reply_to = reply.get("message_id") or params.get("reply_to_message_id")
        message = {
            "message_id": next(self._message_ids[chat_id]),
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": self._bot_user(),
            "text": text,
        }
        if entities:
            message["entities"] = entities
        if reply_to:
            original = self._messages.get((chat_id, int(reply_to)))
            if original is None and not reply.get("allow_sending_without_reply"):
                raise ApiError(400, "Bad Request: message to be replied not found")
            if original is not None:
                message["reply_to_message"] = original
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self._messages[(chat_id, message["message_id"])] = message
        return message

    async def _api_editMessageText(self, params: dict) -> dict:
        key = (int(params["chat_id"]), int(params["message_id"]))
        message = self._messages.get(key)
        if message is None or message["from"]["id"] != self.bot["id"]:
            raise ApiError(400, "Bad Request: message to edit not found")
        text, entities = self._checked_text(params)
        markup = params.get("reply_markup")
        if (text, entities, markup) == (
            message["text"],
            message.get("entities", []),
            message.get("reply_markup"),
        ):
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        edited = {**message, "text": text, "entities": entities, "edit_date": int(time.time())}
        if markup:
            edited["reply_markup"] = markup
        else:
            edited.pop("reply_markup", None)
        self._messages[key] = edited
        return edited

    async def _api_answerCallbackQuery(self, params: dict) -> bool:
        if len(params.get("text") or "") > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        return True

    async def _api_answerInlineQuery(self, params: dict) -> bool:
        results = params.get("results") or []
        if isinstance(results, str):
            results = json.loads(results)
        if len(results) > 50 or len({r["id"] for r in results}) != len(results):
            raise ApiError(400, "Bad Request: RESULTS_TOO_MUCH or duplicate result ids")
        for result in results:
            content = result["input_message_content"]
            if content.get("parse_mode", "").upper() == "HTML":
                text, _ = parse_html(content["message_text"])
            else:
                text = content["message_text"]
            if utf16_len(text) > MAX_TEXT:
                raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self._inline_answers[str(params["inline_query_id"])] = results
        return True

    async def _api_getFile(self, params: dict) -> dict:
        file_id = str(params["file_id"])
        if file_id not in self._files:
            raise ApiError(400, "Bad Request: invalid file_id")
        return {"file_id": file_id, "file_unique_id": file_id,
                "file_size": len(self._files[file_id]), "file_path": f"documents/{file_id}"}

    async def _download(self, request: web.Request) -> web.Response:
        self.calls.append(Call("download", {"path": request.match_info["path"]}))
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        if request.match_info["token"] != self.token or file_id not in self._files:
            return web.Response(status=404)
        return web.Response(body=self._files[file_id])

    async def _api_setMyCommands(self, params: dict) -> bool:
        self.commands[params.get("language_code") or ""] = params["commands"]
        return True

    async def _api_sendChatAction(self, _: dict) -> bool:
        return True

    # -- helpers -------------------------------------------------------------------------

    def _checked_text(self, params: dict) -> tuple[str, list[dict]]:
        raw = str(params.get("text") or "")
        if params.get("parse_mode", "").lower() == "html":
            text, entities = parse_html(raw)
        else:
            text, entities = raw, []
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        return text, entities

    def _push(self, update: dict) -> dict:
        update = {"update_id": next(self._update_ids), **update}
        self._updates.append(update)
        asyncio.get_running_loop().create_task(self._notify())
        return update

    def _message(
        self, user: dict, chat: dict, text: str | None, reply_to: dict | None, content: dict
    ) -> dict:
        message = {
            "message_id": next(self._message_ids[chat["id"]]),
            "date": int(time.time()),
            "chat": chat,
            "from": user,
            **content,
        }
        self._chats[chat["id"]] = chat
        if text is not None:
            message["text"] = text
            if entities := text_entities(text):
                message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        return message

    def _chat(self, chat_id: int) -> dict:
        return self._chats.get(chat_id) or {"id": chat_id, "type": "private", "first_name": "?"}

    def _bot_user(self) -> dict:
        return {key: self.bot[key] for key in ("id", "is_bot", "first_name", "username")}


async def _params(request: web.Request) -> dict[str, Any]:
    """Parameters from JSON, form or query, with PTB's JSON-encoded values decoded."""
    if request.content_type == "application/json":
        return await request.json()
    raw = dict(request.query)
    if request.can_read_body:
        raw.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    return {key: value if key in STRING_PARAMS else _decode(value) for key, value in raw.items()}


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _default_description(status: int, retry_after: int | None) -> str:
    if status == 429:
        return f"Too Many Requests: retry after {retry_after or 1}"
    if status == 502:
        return "Bad Gateway"
    if status >= 500:
        return "Internal Server Error"
    return "Bad Request"


@contextlib.asynccontextmanager
async def polling(
    application: Any, allowed_updates: list[str] | None = None, poll_timeout: float = 1.0
) -> AsyncIterator[Any]:
    """Run a python-telegram-bot ``Application`` in the test's event loop, as ``run_polling``
    does: initialize, ``post_init``, poll, start; then stop and shut down in reverse."""
    async with application:
        if application.post_init:
            await application.post_init(application)
        await application.updater.start_polling(
            timeout=poll_timeout,
            allowed_updates=allowed_updates,
            # as run_polling does: polling errors go to the application's error handlers
            error_callback=lambda exc: application.create_task(
                application.process_error(error=exc, update=None)
            ),
        )
        await application.start()
        try:
            yield application
        finally:
            await application.updater.stop()
            await application.stop()
            if application.post_stop:
                await application.post_stop(application)
