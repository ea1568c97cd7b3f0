"""Webhook mode: Telegram POSTs each update to ``QABOT_WEBHOOK_URL``; several replicas behind
a reverse proxy can serve one bot. On when that setting is set; long polling is the default.

One aiohttp server (``QABOT_WEBHOOK_LISTEN``, default ``0.0.0.0:8443``) serves three paths:

* ``POST <the URL's path>``: an update. Telegram sends ``X-Telegram-Bot-Api-Secret-Token``
  with the secret given to ``setWebhook`` (``QABOT_WEBHOOK_SECRET``); a request without it
  gets 403 and does nothing. The update is written to the journal (``bot.journal``) before
  the 200 that tells Telegram it arrived; one already recorded, by this replica or another
  sharing the database, is a redelivery and is not handled again. If the database cannot
  be written the answer is 503, and Telegram sends the update again later.
* ``GET /healthz``: 200 once the engine is loaded and updates are being handled, else 503
  (what a proxy or an orchestrator routes by).
* ``GET /metrics``: the counters of ``bot.metrics`` in Prometheus's text format.

``setWebhook`` is called at every start (each replica registers the same URL; Telegram keeps
one) and retried until Telegram accepts it, while the server already runs. A stop closes the
server first, so Telegram sends what comes next to another replica or later.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
from urllib.parse import urlsplit

from aiohttp import web
from telegram.error import InvalidToken, TelegramError

from bot.journal import parse_update
from bot.metrics import CONTENT_TYPE
from bot.state import state_in
from qabot.errors import QabotError

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: Telegram's own limit for an update POST is far below this; anything larger is not one.
MAX_BODY = 1 << 20
#: Seconds between attempts to register the webhook while Telegram cannot be reached.
REGISTER_RETRY = (1, 2, 5, 10, 30)


def webhook_routes(application, secret: str, path: str) -> web.Application:
    """The aiohttp application serving ``application``'s webhook, health and metrics."""

    async def receive(request: web.Request) -> web.Response:
        metrics = state_in(application.bot_data).metrics
        if not hmac.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), secret.encode()):
            metrics.updates.labels("refused").inc()
            return web.Response(status=403, text="forbidden\n")
        try:
            payload = json.loads(await request.read())
            update = parse_update(payload, application.bot)  # before it is journaled
        except ValueError as exc:  # not JSON, or NotAnUpdate
            metrics.updates.labels("refused").inc()
            return web.Response(status=400, text=f"not an update: {exc}\n")
        update_id = update.update_id
        try:
            new = await asyncio.to_thread(application.journal.record, [payload])
        except QabotError as exc:
            log.error("Update %d not accepted: %s", update_id, exc)
            metrics.updates.labels("unrecorded").inc()
            return web.Response(status=503, text="cannot record the update now\n")
        if not new:
            metrics.updates.labels("redelivered").inc()
            return web.Response(text="ok (seen before)\n")
        metrics.updates.labels("new").inc()
        await application.update_queue.put(update)
        return web.Response(text="ok\n")

    async def healthz(_: web.Request) -> web.Response:
        ready = application.running and "qabot" in application.bot_data
        return web.Response(status=200 if ready else 503, text="ok\n" if ready else "starting\n")

    async def metrics(_: web.Request) -> web.Response:
        body = state_in(application.bot_data).metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    routes = web.Application(client_max_size=MAX_BODY)
    routes.router.add_post(path, receive)
    routes.router.add_get("/healthz", healthz)
    routes.router.add_get("/metrics", metrics)
    return routes


async def serve_webhook(
    application, settings, allowed_updates: list[str], stop: asyncio.Event | None = None
) -> None:
    """Run the bot in webhook mode until ``stop`` is set (by default: SIGTERM or SIGINT)."""
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    host, port = settings.webhook_listen
    path = urlsplit(settings.webhook_url).path or "/"
    runner = web.AppRunner(webhook_routes(application, settings.webhook_secret, path), access_log=None)
    await _initialize(application, stop)
    if stop.is_set():
        return
    try:
        await application.post_init(application)
        await application.start()
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("Serving the webhook on %s:%d%s", host, port, path)
        register = asyncio.create_task(_register(application, settings, allowed_updates))
        await stop.wait()
        register.cancel()
    finally:
        await runner.cleanup()  # no new updates first: Telegram retries them elsewhere
        if application.running:
            await application.stop()
            await application.post_stop(application)
        await application.shutdown()


async def _initialize(application, stop: asyncio.Event) -> None:
    """``getMe`` until Telegram answers (as polling's bootstrap_retries=-1 does)."""
    for attempt in range(10**9):
        try:
            await application.initialize()
            return
        except InvalidToken:
            raise
        except TelegramError as exc:
            delay = REGISTER_RETRY[min(attempt, len(REGISTER_RETRY) - 1)]
            log.warning("Telegram cannot be reached (%s); trying again in %d s", exc, delay)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return


async def _register(application, settings, allowed_updates: list[str]) -> None:
    """``setWebhook`` until Telegram accepts it."""
    for attempt in range(10**9):
        try:
            await application.bot.set_webhook(
                settings.webhook_url,
                secret_token=settings.webhook_secret,
                allowed_updates=allowed_updates,
            )
            log.info("Webhook registered with Telegram")
            return
        except TelegramError as exc:
            delay = REGISTER_RETRY[min(attempt, len(REGISTER_RETRY) - 1)]
            log.warning("Could not register the webhook (%s); trying again in %d s", exc, delay)
            await asyncio.sleep(delay)
