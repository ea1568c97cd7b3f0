"""Every question asked, and what readers thought of the answers: the loop that turns use
into a better bot. Also what any replica needs to serve a press on an answer's buttons or a
follow-up to it: the answer's results (rows in the index generation that found them), its
reply language, and the message it was sent as.

Stored in the bot's database (``bot.database``): for each question its time, the chat's id
and type, its language, the question text itself (in groups only the text addressed to the
bot, never other messages), whether it was answered, the confidence, and the cited passage.
A vote is one per user per answer and can be changed. ``/stats`` summarises it for admins;
``qabot feedback export`` turns the liked answers into a question file ``qabot eval`` reads;
``qabot feedback purge`` deletes it all (docs/bot.md, Privacy).
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass

import sqlalchemy as sa

from bot.database import Database, insert
from bot.schema import questions, votes
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


@dataclass(frozen=True)
class StoredAnswer:
    """An answer as logged: where it was given and its results, by index row."""

    chat_id: int
    #: The index generation whose rows ``results`` are.
    generation: str
    language: str
    #: (row, score, highlight) of each hit, best first.
    results: list[tuple[int, float, tuple[int, int] | None]]


class FeedbackStore:
    """The question log and the votes, in the bot's database (``bot.database``)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def record(
        self, chat_id: int, chat_type: str, language: str, answer: Answer, *,
        reply_language: str = "en", generation: str = "",
    ) -> int:
        """Log a question and its outcome; returns its id (what the answer's buttons carry).
        ``language``: the question's; ``reply_language``: the answer's labels;
        ``generation``: the index that answered (its rows are stored for paging)."""
        top = answer.hits[0] if answer.answered and answer.hits else None
        sentence = ""
        if top is not None and top.highlight:
            sentence = top.passage.text[top.highlight[0] : top.highlight[1]]
        row = {
            "asked": time.time(), "chat_id": chat_id, "chat_type": chat_type,
            "language": language, "question": answer.question,
            "answered": int(answer.answered), "confidence": float(answer.confidence),
            "doc_id": top.passage.doc_id if top else None,
            "paragraph": top.passage.paragraph if top else None,
            "sentence": sentence or None, "passage": top.passage.text if top else None,
            "reply_language": reply_language, "generation": generation,
            "results": _results(answer),
        }
        with self._database.begin() as connection:
            return connection.execute(
                questions.insert().values(row).returning(questions.c.id)
            ).scalar_one()

    def sent_as(self, question_id: int, message_id: int) -> None:
        """The answer to ``question_id`` went out as ``message_id`` (replies to it follow it up)."""
        with self._database.begin() as connection:
            connection.execute(
                questions.update().where(questions.c.id == question_id).values(message_id=message_id)
            )

    def answer(self, question_id: int) -> StoredAnswer | None:
        """The logged answer to ``question_id``, None if there is none (or no results)."""
        query = sa.select(
            questions.c.chat_id, questions.c.generation, questions.c.reply_language,
            questions.c.results,
        ).where(questions.c.id == question_id)
        with self._database.connect() as connection:
            row = connection.execute(query).first()
        if row is None or not row.results:
            return None
        results = [(r, s, (a, b) if a is not None else None) for r, s, a, b in json.loads(row.results)]
        return StoredAnswer(row.chat_id, row.generation or "", row.reply_language or "en", results)

    def article_answered_by(self, chat_id: int, message_id: int) -> str | None:
        """The article of the answer sent as ``message_id`` in ``chat_id`` (a reply to it)."""
        query = sa.select(questions.c.doc_id).where(
            (questions.c.chat_id == chat_id) & (questions.c.message_id == message_id)
        )
        with self._database.connect() as connection:
            return connection.execute(query).scalar()

    def latest_article(self, chat_id: int, since: float) -> str | None:
        """The article of the last answer sent in ``chat_id`` since ``since``, if any."""
        query = (
            sa.select(questions.c.doc_id)
            .where((questions.c.chat_id == chat_id) & (questions.c.asked >= since)
                   & questions.c.message_id.is_not(None) & (questions.c.answered == 1))
            .order_by(questions.c.asked.desc())
            .limit(1)
        )
        with self._database.connect() as connection:
            return connection.execute(query).scalar()

    def vote(self, question_id: int, chat_id: int, user_id: int, value: int) -> Vote:
        """Record ``user_id``'s vote (+1 or -1) on an answer given in ``chat_id``."""
        with self._database.begin() as connection:
            asked_in = connection.execute(
                sa.select(questions.c.chat_id).where(questions.c.id == question_id)
            ).first()
            if asked_in is None:
                return Vote.UNKNOWN
            if asked_in.chat_id != chat_id:
                return Vote.FOREIGN
            before = connection.execute(
                sa.select(votes.c.vote).where(
                    (votes.c.question_id == question_id) & (votes.c.user_id == user_id)
                )
            ).scalar()
            if before == value:
                return Vote.SAME
            statement = insert(self._database, votes).values(
                question_id=question_id, user_id=user_id, vote=value, voted=time.time()
            )
            connection.execute(statement.on_conflict_do_update(
                index_elements=[votes.c.question_id, votes.c.user_id],
                set_={"vote": statement.excluded.vote, "voted": statement.excluded.voted},
            ))
        return Vote.RECORDED if before is None else Vote.CHANGED

    def stats(self, now: float | None = None, top: int = 5) -> Stats:
        now = time.time() if now is None else now
        midnight = now - now % DAY
        count = sa.func.count()

        def asked_since(since: float):
            return sa.select(count).where(questions.c.asked >= since).scalar_subquery()

        key = sa.func.lower(sa.func.trim(questions.c.question))
        declined = (
            sa.select(sa.func.min(questions.c.question), count.label("n"))
            .where(questions.c.answered == 0)
            .group_by(key)
            .order_by(sa.desc("n"), sa.func.max(questions.c.asked).desc())
            .limit(top)
        )
        down = count.label("n")
        disliked = (
            sa.select(questions.c.question, questions.c.doc_id, questions.c.paragraph,
                      questions.c.passage, down)
            .join(votes, votes.c.question_id == questions.c.id)
            .where(votes.c.vote == -1)
            .group_by(questions.c.id)
            .order_by(sa.desc("n"), questions.c.asked.desc())
            .limit(top)
        )
        with self._database.connect() as connection:
            today, week, total, answered = connection.execute(sa.select(
                asked_since(midnight), asked_since(now - 7 * DAY), asked_since(0),
                sa.select(count).where(questions.c.answered == 1).scalar_subquery(),
            )).one()
            declined_rows = connection.execute(declined).all()
            disliked_rows = connection.execute(disliked).all()
        return Stats(
            today=today,
            week=week,
            total=total,
            answered=answered / total if total else 0.0,
            declined=[(question, n) for question, n in declined_rows],
            disliked=[tuple(row) for row in disliked_rows],
        )

    def liked(self, since: float = 0.0) -> list[dict]:
        """Answers voted up more than down, as ``qabot eval`` questions: the answering
        sentence is the answer string, the article the gold paragraph."""
        query = (
            sa.select(questions.c.id, questions.c.language, questions.c.question,
                      questions.c.sentence, questions.c.passage, questions.c.doc_id)
            .join(votes, votes.c.question_id == questions.c.id)
            .where((questions.c.answered == 1) & (questions.c.asked >= since))
            .group_by(questions.c.id)
            .having(sa.func.sum(votes.c.vote) > 0)
            .order_by(questions.c.asked)
        )
        with self._database.connect() as connection:
            rows = connection.execute(query).all()
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
        with self._database.begin() as connection:
            count = connection.execute(sa.select(sa.func.count()).select_from(questions)).scalar()
            connection.execute(votes.delete())
            connection.execute(questions.delete())
        if self._database.dialect.name == "sqlite":  # give the space back to the disk
            raw = self._database.raw_connection()  # outside any transaction, as VACUUM needs
            try:
                raw.driver_connection.execute("VACUUM")
            finally:
                raw.close()
        return count


def _results(answer: Answer) -> str | None:
    """The hits as JSON rows ``[row, score, start, end]``; None when declined or when a hit
    has no index row (made outside an index)."""
    if not answer.answered or not answer.hits or any(hit.row is None for hit in answer.hits):
        return None
    return json.dumps([
        [hit.row, round(float(hit.score), 6), *(hit.highlight or (None, None))]
        for hit in answer.hits
    ])
