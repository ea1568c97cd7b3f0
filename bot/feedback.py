"""Every question asked, and what readers thought of the answers: the loop that turns use
into a better bot.

Stored in the bot's database (``bot.database``): for each question its time, the chat's id
and type, its language, the question text itself (in groups only the text addressed to the
bot, never other messages), whether it was answered, the confidence, and the cited passage.
A vote is one per user per answer and can be changed. ``/stats`` summarises it for admins;
``qabot feedback export`` turns the liked answers into a question file ``qabot eval`` reads;
``qabot feedback purge`` deletes it all (docs/bot.md, Privacy).
"""

from __future__ import annotations

import enum
import sqlite3
import time
from dataclasses import dataclass

from index.retrieval.engine import Answer

DAY = 24 * 3600


class Vote(enum.Enum):
    """What a vote press did."""

    RECORDED = "recorded"
    CHANGED = "changed"
    SAME = "same"
    #: No such answer (forged data, or the log was purged).
    UNKNOWN = "unknown"
    #: The answer was given in another chat.
    FOREIGN = "foreign"


@dataclass(frozen=True)
class Stats:
    """What ``/stats`` shows."""

    today: int
    week: int
    total: int
    #: Share of all questions that were answered (not declined), 0 when there are none.
    answered: float
    #: (question, times asked) of the most frequent declined questions.
    declined: list[tuple[str, int]]
    #: (question, article id, paragraph, passage, 👎 count) of the answers voted down.
    disliked: list[tuple[str, str, int, str, int]]


class FeedbackStore:
    """The question log and the votes, over an open database connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def record(self, chat_id: int, chat_type: str, language: str, answer: Answer) -> int:
        """Log a question and its outcome; returns its id (what vote buttons carry)."""
        top = answer.hits[0] if answer.answered and answer.hits else None
        sentence = ""
        if top is not None and top.highlight:
            sentence = top.passage.text[top.highlight[0] : top.highlight[1]]
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO questions (asked, chat_id, chat_type, language, question, answered,"
                " confidence, doc_id, paragraph, sentence, passage)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(), chat_id, chat_type, language, answer.question,
                    int(answer.answered), float(answer.confidence),
                    top.passage.doc_id if top else None, top.passage.paragraph if top else None,
                    sentence or None, top.passage.text if top else None,
                ),
            )
        return int(cursor.lastrowid)

    def vote(self, question_id: int, chat_id: int, user_id: int, value: int) -> Vote:
        """Record ``user_id``'s vote (+1 or -1) on an answer given in ``chat_id``."""
        row = self._db.execute(
            "SELECT chat_id FROM questions WHERE id = ?", (question_id,)
        ).fetchone()
        if row is None:
            return Vote.UNKNOWN
        if row[0] != chat_id:
            return Vote.FOREIGN
        before = self._db.execute(
            "SELECT vote FROM votes WHERE question_id = ? AND user_id = ?", (question_id, user_id)
        ).fetchone()
        if before is not None and before[0] == value:
            return Vote.SAME
        with self._db:
            self._db.execute(
                "INSERT INTO votes (question_id, user_id, vote, voted) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (question_id, user_id) DO UPDATE SET vote = excluded.vote,"
                " voted = excluded.voted",
                (question_id, user_id, value, time.time()),
            )
        return Vote.RECORDED if before is None else Vote.CHANGED

    def stats(self, now: float | None = None, top: int = 5) -> Stats:
        now = time.time() if now is None else now
        midnight = now - now % DAY

        def count(since: float) -> int:
            return self._db.execute(
                "SELECT COUNT(*) FROM questions WHERE asked >= ?", (since,)
            ).fetchone()[0]

        total = count(0)
        answered = self._db.execute("SELECT COUNT(*) FROM questions WHERE answered").fetchone()[0]
        declined = self._db.execute(
            "SELECT question, COUNT(*) AS n, MAX(asked) AS latest FROM questions"
            " WHERE NOT answered GROUP BY lower(trim(question))"
            " ORDER BY n DESC, latest DESC LIMIT ?",
            (top,),
        ).fetchall()
        disliked = self._db.execute(
            "SELECT q.question, q.doc_id, q.paragraph, q.passage, COUNT(*) AS n"
            " FROM votes v JOIN questions q ON q.id = v.question_id WHERE v.vote = -1"
            " GROUP BY q.id ORDER BY n DESC, q.asked DESC LIMIT ?",
            (top,),
        ).fetchall()
        return Stats(
            today=count(midnight),
            week=count(now - 7 * DAY),
            total=total,
            answered=answered / total if total else 0.0,
            declined=[(question, n) for question, n, _ in declined],
            disliked=[tuple(row) for row in disliked],
        )

    def liked(self, since: float = 0.0) -> list[dict]:
        """Answers voted up more than down, as ``qabot eval`` questions: the answering
        sentence is the answer string, the article the gold paragraph."""
        rows = self._db.execute(
            "SELECT q.id, q.language, q.question, q.sentence, q.passage, q.doc_id"
            " FROM questions q JOIN votes v ON v.question_id = q.id"
            " WHERE q.answered AND q.asked >= ? GROUP BY q.id HAVING SUM(v.vote) > 0"
            " ORDER BY q.asked",
            (since,),
        ).fetchall()
        return [
            {
                "id": f"feedback-{qid}",
                "lang": language,
                "question": question,
                "answers": [sentence or passage],
                "paragraph": doc_id,
            }
            for qid, language, question, sentence, passage, doc_id in rows
        ]

    def purge(self) -> int:
        """Delete every logged question and vote; returns how many questions there were."""
        with self._db:
            (count,) = self._db.execute("SELECT COUNT(*) FROM questions").fetchone()
            self._db.execute("DELETE FROM votes")
            self._db.execute("DELETE FROM questions")
        self._db.execute("VACUUM")
        return count
