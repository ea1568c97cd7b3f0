"""The Telegram bot: answers questions in private and group chats with cited passages."""
