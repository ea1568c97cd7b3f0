"""What the bot counts, in Prometheus's text format at ``GET /metrics`` (webhook mode).

prometheus_client keeps the numbers and writes the format; each bot process has its own
registry, so a scrape of one replica shows that replica (sum them in Prometheus).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Seconds from a question to its answer being found (embedding + search), not sending.
#: Warm questions take about 7 ms on 2 cores (docs/performance.md); the tail is the CPU queue.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The bot's counters: questions by outcome, answer latency, errors, updates received
    by the webhook, and the index generation being served."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.questions = Counter(
            "qabot_questions", "Questions answered or declined.", ["outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "qabot_answer_seconds", "Time to find an answer (embedding and search).",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.errors = Counter(
            "qabot_errors", "Updates whose handling failed with an error.", registry=self.registry
        )
        self.updates = Counter(
            "qabot_webhook_updates",
            "Updates POSTed to the webhook: new, redelivered (already recorded), refused "
            "(bad secret or body), or not recorded (database down; Telegram retries).",
            ["result"], registry=self.registry,
        )
        self.index = Info("qabot_index", "The index generation being served.", registry=self.registry)
        for outcome in ("answered", "declined"):
            self.questions.labels(outcome)
        for result in ("new", "redelivered", "refused", "unrecorded"):
            self.updates.labels(result)

    def answered(self, answered: bool, seconds: float) -> None:
        self.questions.labels("answered" if answered else "declined").inc()
        self.latency.observe(seconds)

    def serving(self, generation: str) -> None:
        self.index.info({"generation": generation})

    def render(self) -> bytes:
        return generate_latest(self.registry)
