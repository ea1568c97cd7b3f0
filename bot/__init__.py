"""The Telegram bot: answers questions in private and group chats with cited passages."""

import sys

# httpx (python-telegram-bot's HTTP client) imports its command-line client when click and
# rich are installed, and here they are (huggingface_hub and typer need them): 70-80 ms of
# the bot's start, for a command the bot never runs. A module set to None in sys.modules
# counts as not installed, so httpx skips it as it would without click.
sys.modules.setdefault("httpx._main", None)
