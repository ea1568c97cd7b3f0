"""qabot: answers questions about a corpus of articles with cited passages.

Data flows through the packages in this order:
``corpus`` (read and cut articles into passages) -> ``index`` (embed, store, retrieve)
-> ``bot`` (Telegram) and ``qabot.cli`` (the ``qabot`` command).
"""
