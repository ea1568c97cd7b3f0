"""Hybrid ranking: dense + sentence-level dense + BM25, fused per language pool, then pooled.

Why pools. The embedding model (multilingual-e5-small) is strongly biased towards the
question's own language: for an English question every English passage of the bundled
corpus outscores every Chinese one, so a question answered only by a Chinese article never
reaches the top 10. Scores are therefore never compared across languages directly:

1. **Within each language pool** (the passages of one language), signals are standardised
   over the pool's passages (z-scores, so their scales do not matter) and added: passage
   cosine, best-sentence cosine (weight :data:`SENTENCE_WEIGHT`) and, in the question's
   own language only, BM25 (weight :data:`LEXICAL_WEIGHT`, scaled down when few of the
   question's words occur in the pool). Across languages BM25 is noise: English function
   words occur in the Latin snippets of Chinese articles, and with it English questions
   over the CMRC Chinese corpus found the answer first 23 % of the time, without it 52 %
   (dense alone: 40 %); the bundled cross-language dev questions were unchanged (56 %).
2. **Evidence against the index's own null** (:class:`NullStatistics`). At build time a
   shipped bank of unrelated questions (``index/data/reference_questions.jsonl``) is run
   against the new index; for each (question language, passage language) it records the
   mean and spread of what an *unrelated* question gets: the best passage cosine, the best
   sentence cosine and the best word coverage in that pool. A real question's evidence in
   a pool is how many of those spreads it stands above (:func:`pool_evidence`). That is
   what makes the decisions carry over between corpora of any size or make-up, and it
   removes the model's bias towards the question's own language.
3. **Which pool holds the answer**: a logistic model (``pool_model`` in
   ``index/data/decision.json``) of the evidence gap between the question's language and
   the other, and of the word coverage in the question's language.
4. **Confidence** = σ(best pool evidence − ``threshold``); below 0.5 qabot declines ("no
   good match"). A pool in another language than the question's gets ``cross_offset``
   added (cross-language similarity is weaker by nature), ``lone_cross_offset`` when the
   index has no passages in the question's language at all: then the answer can only be
   across languages (tuning data: a Chinese-only corpus answered 0.61 of the English
   questions whose answer it holds with 1.0, 0.44 with 0.5, declining the same share of
   off-topic questions, ≥ 0.93). A passage's score is confidence · P(its pool) / P(the likelier pool) ·
   exp(fused − its pool's best fused): the top hit's score is the confidence, and an
   uncertain pool decision still shows the best of both pools.

The constants in ``index/data/decision.json`` were fitted by ``bench/calibrate.py`` on
tuning data only (the dev sets in ``tests/data``, the small corpus there, CMRC trial),
never on XQuAD.

**Candidates.** On a large index the engine scores only candidates (see ``index.retrieval.engine``);
each language pool's statistics (mean, spread and maximum of each signal over *all* its
passages, as :class:`PoolSummary`) then come from the caller. With every passage scored
they are computed from the signals themselves (:func:`summarise`): one path either way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Weight of the best-sentence cosine (z-scored) in a pool's fused score (passage cosine: 1).
SENTENCE_WEIGHT = 0.5
#: Weight of BM25 (z-scored) in the question-language pool's fused score, at full coverage.
LEXICAL_WEIGHT = 1.5
#: The share of the question's IDF mass present in a pool at which BM25 gets full weight.
GUARD_FULL_COVERAGE = 0.5
#: Temperature of the within-pool softmax that spreads a pool's probability over its passages.
TEMPERATURE = 1.0
#: A signal whose standard deviation is below this does not vary: its z-scores are 0.
FLAT_SPREAD = 1e-9
#: A null statistic whose spread is below this (e.g. word coverage across languages, 0 for
#: every reference question) carries no evidence: its z-score counts as 0.
NULL_MIN_SPREAD = 1e-4
#: The evidence features, per pool: best passage cosine, best sentence cosine, best coverage.
EVIDENCE = ("dense_top", "sentence_top", "coverage_top")
#: A question of at most this many distinct words is *short* and measured against the short
#: reference questions: one or two words ("hi", "thanks", "谢谢") sit close to everything in
#: the model's space, so their best cosines are high for any corpus. Measured against the
#: whole bank, "hi" was answered on the bundled corpus, CMRC and XQuAD (confidence 0.54-0.71).
SHORT_WORDS = 2
#: Fewer reference questions than this in a pair's short class: the whole class is used.
SHORT_MIN_SAMPLES = 10
#: The fitted constants (see the module docstring).
DECISION_FILE = Path(__file__).resolve().parent.parent / "data" / "decision.json"


@dataclass(frozen=True)
class Logistic:
    """A fitted logistic model over named features: P = σ(bias + Σ weight · (x − mean) / scale)."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weight: tuple[float, ...]
    bias: float

    def probability(self, values: dict[str, float | None]) -> float:
        """P(class 1); a missing (None) feature is imputed with its training mean."""
        logit = self.bias
        for name, mean, scale, weight in zip(self.features, self.mean, self.scale, self.weight):
            value = values.get(name)
            if value is not None and math.isfinite(value):
                logit += weight * (value - mean) / scale
        return _sigmoid(logit)


@dataclass(frozen=True)
class Decision:
    """The fitted constants of the decisions (``index/data/decision.json``)."""

    #: Weight of the word-coverage z-score in the question-language pool's evidence.
    coverage_weight: float
    #: Added to a cross-language pool's evidence (its signals are weaker by nature).
    cross_offset: float
    #: The same when the index has no passages in the question's language at all (a
    #: Chinese corpus asked in English): there the answer can only be across languages.
    lone_cross_offset: float
    #: Evidence at which the confidence is 0.5.
    threshold: float
    #: P(the answer is in another language's pool).
    pool_model: Logistic

    @classmethod
    def load(cls, path: Path = DECISION_FILE) -> Decision:
        data = json.loads(path.read_text(encoding="utf-8"))
        pool = data["pool_model"]
        return cls(
            **data["evidence"],
            pool_model=Logistic(
                tuple(pool["features"]), tuple(pool["mean"]), tuple(pool["scale"]),
                tuple(pool["weight"]), float(pool["bias"]),
            ),
        )


DECISION = Decision.load()


@dataclass(frozen=True)
class NullStatistics:
    """What unrelated questions get on one index: per ``"<question lang>><passage lang>"``
    pair (``"…/short"`` for short questions, see :data:`SHORT_WORDS`), the mean and standard
    deviation of each :data:`EVIDENCE` feature."""

    pairs: dict[str, dict[str, tuple[float, float]]]
    questions: int = 0

    def z(
        self, question_language: str, pool_language: str, name: str, value: float,
        short: bool = False,
    ) -> float:
        """How many null spreads ``value`` stands above the null mean (0 when unknown)."""
        pair = _pair(question_language, pool_language, short)
        stats = self.pairs.get(pair) or self.pairs.get(_pair(question_language, pool_language), {})
        mean, std = stats.get(name, (0, 0))
        return 0.0 if std < NULL_MIN_SPREAD else (value - mean) / std

    @classmethod
    def from_samples(
        cls, samples: dict[tuple[str, str, bool], list[dict[str, float]]], questions: int
    ) -> NullStatistics:
        """From the evidence features of the ``questions`` reference questions, per
        (question language, pool language, short question)."""
        pairs = {
            _pair(*key): {
                name: (float(np.mean([r[name] for r in rows])), float(np.std([r[name] for r in rows])))
                for name in EVIDENCE
            }
            for key, rows in samples.items()
            if len(rows) >= (SHORT_MIN_SAMPLES if key[2] else 1)
        }
        return cls(pairs, questions)

    def to_dict(self) -> dict:
        return {"questions": self.questions, "pairs": {
            pair: {name: [round(m, 6), round(s, 6)] for name, (m, s) in stats.items()}
            for pair, stats in self.pairs.items()
        }}

    @classmethod
    def from_dict(cls, data: dict) -> NullStatistics:
        pairs = {
            pair: {name: (float(m), float(s)) for name, (m, s) in stats.items()}
            for pair, stats in data["pairs"].items()
        }
        return cls(pairs, int(data.get("questions", 0)))


#: No null yet (the build computes it with this): evidence is meaningless, rankings are not.
UNCALIBRATED = NullStatistics({})


@dataclass(frozen=True)
class Signals:
    """Everything known about one question, per scored passage (same order)."""

    dense: np.ndarray  # passage cosine
    sentence: np.ndarray  # best sentence cosine (the passage cosine when none are stored)
    lexical: np.ndarray  # BM25
    coverage: np.ndarray  # IDF-weighted share of the question's words in the passage
    language_coverage: dict[str, float]  # the same share over all passages of a language


@dataclass(frozen=True)
class Moments:
    """One signal over a set of passages: how many, its mean, variance and maximum."""

    count: int
    mean: float
    variance: float
    top: float

    @property
    def std(self) -> float:
        return math.sqrt(max(0.0, self.variance))

    @staticmethod
    def of(values: np.ndarray) -> Moments:
        values = values.astype(np.float64)
        return Moments(len(values), float(values.mean()), float(values.var()), float(values.max()))


@dataclass(frozen=True)
class PoolSummary:
    """A language pool's statistics over all its passages, scored or not."""

    dense: Moments
    sentence: Moments
    lexical: Moments
    #: The best passage's IDF-weighted share of the question's words.
    coverage_top: float

    def evidence_features(self) -> dict[str, float]:
        return {
            "dense_top": self.dense.top,
            "sentence_top": self.sentence.top,
            "coverage_top": self.coverage_top,
        }


@dataclass
class Fused:
    """The outcome: a score per scored passage (−inf where not allowed) and why."""

    scores: np.ndarray
    #: σ(best pool evidence − threshold): below 0.5 the question is declined.
    confidence: float
    p_other: float
    #: Per pool language: its evidence features and evidence; and the pool decision's inputs.
    features: dict = field(default_factory=dict)


def summarise(signals: Signals, members: np.ndarray) -> PoolSummary:
    """The exact summary of the passages selected by ``members`` (every one scored)."""
    return PoolSummary(
        Moments.of(signals.dense[members]),
        Moments.of(signals.sentence[members]),
        Moments.of(signals.lexical[members]),
        float(signals.coverage[members].max()),
    )


def lexical_guard(language_coverage: float) -> float:
    """BM25's weight factor in a pool: share of the question's words present there, capped."""
    return min(1.0, max(0.0, language_coverage) / GUARD_FULL_COVERAGE)


def pool_evidence(
    features: dict[str, float],
    question_language: str,
    pool_language: str,
    null: NullStatistics,
    decision: Decision = DECISION,
    own_pool: bool = True,
    short: bool = False,
) -> float:
    """How far the pool's best match stands above what unrelated questions get there.

    The mean z-score of the best passage cosine and best sentence cosine, plus
    ``coverage_weight`` · z(best word coverage) in the question's language, or in another
    language (where words are not shared) ``cross_offset``, ``lone_cross_offset`` when
    there is no pool in the question's language (``own_pool`` False). ``short``: the
    question has at most :data:`SHORT_WORDS` words. ``features``: the pool's
    :data:`EVIDENCE` (``PoolSummary.evidence_features``).
    """
    z = {
        name: null.z(question_language, pool_language, name, features[name], short)
        for name in EVIDENCE
    }
    evidence = (z["dense_top"] + z["sentence_top"]) / 2
    if pool_language == question_language:
        return evidence + decision.coverage_weight * z["coverage_top"]
    return evidence + (decision.cross_offset if own_pool else decision.lone_cross_offset)


def fuse(
    signals: Signals,
    languages: np.ndarray,
    question_language: str,
    pools: dict[str, PoolSummary],
    null: NullStatistics,
    decision: Decision = DECISION,
    words: int = SHORT_WORDS + 1,
) -> Fused:
    """Fused, pooled and calibrated scores of the scored passages (``signals`` and
    ``languages`` are theirs); ``pools`` summarises each allowed language over all its
    passages. Passages of other languages get −inf. ``words``: how many distinct words the
    question has (see :data:`SHORT_WORDS`); one without any ("?", an emoji) carries no
    evidence and gets confidence 0."""
    short = is_short(words)
    own_pool = question_language in pools
    evidence = {
        lang: pool_evidence(
            summary.evidence_features(), question_language, lang, null, decision, own_pool, short
        )
        for lang, summary in pools.items()
    }
    p_other, features = _pool_decision(evidence, question_language, pools, null, decision, short)
    confidence = _sigmoid(max(evidence.values()) - decision.threshold) if evidence and words else 0.0
    likelier = max(p_other, 1.0 - p_other)
    scores = np.full(len(languages), -np.inf)
    for lang, summary in pools.items():
        members = languages == lang
        if not members.any():
            continue
        same = lang == question_language
        fused = _fused(signals, members, summary, lang if same else None)
        p_pool = (1.0 - p_other) if same else p_other
        scores[members] = confidence * (p_pool / likelier) * np.exp(
            (fused - fused.max()) / TEMPERATURE
        )
    features["evidence"] = evidence
    features["pools"] = {lang: summary.evidence_features() for lang, summary in pools.items()}
    features["words"] = words
    return Fused(scores, confidence, p_other, features)


def _fused(
    signals: Signals, members: np.ndarray, summary: PoolSummary, lexical_language: str | None
) -> np.ndarray:
    """One pool's fused scores, z-scored against its whole-pool moments; BM25 counts only
    in the question's language (``lexical_language``)."""
    fused = _standardised(signals.dense[members], summary.dense)
    fused = fused + SENTENCE_WEIGHT * _standardised(signals.sentence[members], summary.sentence)
    if lexical_language is not None:
        guard = lexical_guard(signals.language_coverage.get(lexical_language, 0.0))
        if guard > 0:
            fused = fused + LEXICAL_WEIGHT * guard * _standardised(
                signals.lexical[members], summary.lexical
            )
    return fused


def _pool_decision(
    evidence: dict[str, float],
    question_language: str,
    pools: dict[str, PoolSummary],
    null: NullStatistics,
    decision: Decision,
    short: bool,
) -> tuple[float, dict]:
    """P(the answer is in another language's pool), and the model's inputs."""
    others = [lang for lang in evidence if lang != question_language]
    if question_language not in evidence or not others:
        return (0.0 if question_language in evidence else 1.0), {}
    best_other = max(others, key=evidence.get)
    inputs = {
        "evidence_gap": evidence[question_language] - evidence[best_other],
        "coverage_same": null.z(
            question_language, question_language, "coverage_top",
            pools[question_language].coverage_top, short,
        ),
    }
    return decision.pool_model.probability(inputs), inputs


def _standardised(values: np.ndarray, moments: Moments) -> np.ndarray:
    """(x − mean) / std against a pool's moments; zeros when the signal does not vary."""
    values = values.astype(np.float64)
    if moments.std < FLAT_SPREAD:
        return np.zeros_like(values)
    return (values - moments.mean) / moments.std


def _pair(question_language: str, pool_language: str, short: bool = False) -> str:
    return f"{question_language}>{pool_language}" + ("/short" if short else "")


def is_short(words: int) -> bool:
    """Whether a question of ``words`` distinct words is short (see :data:`SHORT_WORDS`)."""
    return words <= SHORT_WORDS


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-500.0, min(500.0, x))))
