"""Hybrid ranking: dense + sentence-level dense + BM25, fused per language pool, then pooled.

Why pools. The embedding model (multilingual-e5-small) is strongly biased towards the
question's own language: for an English question every English passage of the bundled
corpus outscores every Chinese one, so a question answered only by a Chinese article never
reaches the top 10. Scores are therefore never compared across languages directly:

1. **Within each language pool** (the passages in the question's language; the others),
   three signals are standardised over the pool's passages (z-scores, so their scales do
   not matter) and added: passage cosine, best-sentence cosine (weight
   :data:`SENTENCE_WEIGHT`) and BM25 (weight :data:`LEXICAL_WEIGHT`).
   *Cross-lingual guard*: BM25's weight in a pool is scaled by how much of the question's
   words (IDF-weighted) occur anywhere in that pool, reaching full weight at
   :data:`GUARD_FULL_COVERAGE`. An English question over Chinese passages shares at most
   a number or a Latin name with them, so lexical noise there weighs (almost) nothing,
   while a rare shared name or number still counts.
2. **Which pool holds the answer** is a calibrated decision, a logistic model
   (:data:`POOL_MODEL`) of three features: how far the best same-language passage beats the
   best other-language one in passage cosine and in sentence cosine, and how much of the
   question's words the best same-language passage contains. A question whose words are
   not in any passage of its language, and whose best same-language match barely beats
   the other language, is routed across.
3. **The final score** of a passage is P(answerable) · P(its pool) · exp(fused − pool's best
   fused): a soft interleave, so an uncertain pool decision still shows the best of both.
4. **"No good match"**: P(answerable) is a second logistic model (:data:`ANSWER_MODEL`)
   of how clearly the best passage stands out in each pool, word coverage and the pool
   decision. The top hit's score is compared with the retriever's threshold.

All weights were chosen and the two models fitted on the dev set only (tests/data); see
``bench/calibrate.py``, which refits them and prints these constants.

**Candidates.** :func:`fuse` scores every passage. On a large index the engine scores only
candidates (see ``index.search``) with :func:`fuse_candidates`, which takes each language
pool's statistics (mean, spread and maximum of each signal over *all* its passages, as
:class:`PoolSummary`) from the caller instead of computing them from the scored passages,
so the features and z-scores stay those the models were fitted with.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

#: Weight of the best-sentence cosine (z-scored) in a pool's fused score (passage cosine: 1).
SENTENCE_WEIGHT = 0.5
#: Weight of BM25 (z-scored) in a pool's fused score, at full lexical coverage.
LEXICAL_WEIGHT = 1.5
#: The share of the question's IDF mass present in a pool at which BM25 gets full weight.
GUARD_FULL_COVERAGE = 0.5
#: Temperature of the within-pool softmax that spreads a pool's probability over its passages.
TEMPERATURE = 1.0
#: A signal whose standard deviation over a pool is below this does not vary: its z-scores are 0.
FLAT_SPREAD = 1e-9


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
        return 1.0 / (1.0 + math.exp(-logit))


# Fitted by bench/calibrate.py on tests/data/dev_questions.jsonl (+ dev_offtopic.jsonl).
#: P(the answer is in the other language's pool | answerable).
POOL_MODEL = Logistic(
    features=('dense_gap', 'sentence_gap', 'coverage_same'),
    mean=(0.09002, 0.09092, 0.40039),
    scale=(0.02854, 0.03529, 0.20776),
    weight=(-0.8988, -2.107, -1.7369),
    bias=-1.4094,
)
#: P(the question is answerable from the articles).
ANSWER_MODEL = Logistic(
    features=('dense_lead_same', 'sentence_lead_same', 'coverage_same', 'dense_lead_other', 'sentence_lead_other', 'p_other'),
    mean=(0.048, 0.05154, 0.33885, 0.02874, 0.02836, 0.49195),
    scale=(0.0223, 0.02446, 0.21628, 0.00852, 0.00952, 0.43256),
    weight=(1.0613, -0.2039, 1.2992, 0.4004, 0.7758, -0.3383),
    bias=1.964,
)


@dataclass(frozen=True)
class Signals:
    """Everything known about one question, per passage of the index (same order)."""

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
    def merge(parts: list[Moments]) -> Moments:
        """The moments of the union of disjoint sets (law of total variance)."""
        count = sum(p.count for p in parts)
        mean = sum(p.count * p.mean for p in parts) / count
        variance = sum(p.count * (p.variance + (p.mean - mean) ** 2) for p in parts) / count
        return Moments(count, mean, variance, max(p.top for p in parts))


@dataclass(frozen=True)
class PoolSummary:
    """A language pool's statistics over all its passages, scored or not (candidate mode)."""

    dense: Moments
    sentence: Moments
    lexical: Moments
    #: The best passage's IDF-weighted share of the question's words.
    coverage_top: float

    @staticmethod
    def merge(parts: list[PoolSummary]) -> PoolSummary:
        """The summary of a pool made of several languages' passages."""
        return PoolSummary(
            Moments.merge([p.dense for p in parts]),
            Moments.merge([p.sentence for p in parts]),
            Moments.merge([p.lexical for p in parts]),
            max(p.coverage_top for p in parts),
        )


@dataclass
class Fused:
    """The outcome: a score per passage (−inf where not allowed) and why."""

    scores: np.ndarray
    answerable: float
    p_other: float
    features: dict[str, float | None] = field(default_factory=dict)


def zscore(values: np.ndarray) -> np.ndarray:
    """(x − mean) / std; all zeros when the values do not vary (e.g. no word matched)."""
    if values.size == 0:
        return values.astype(np.float64)
    values = values.astype(np.float64)
    spread = values.std()
    if spread < FLAT_SPREAD:
        return np.zeros_like(values)
    return (values - values.mean()) / spread


def lexical_guard(language_coverage: float) -> float:
    """BM25's weight factor in a pool: share of the question's words present there, capped."""
    return min(1.0, max(0.0, language_coverage) / GUARD_FULL_COVERAGE)


def pool_scores(signals: Signals, members: np.ndarray, language_coverage: float) -> np.ndarray:
    """Fused scores of the passages selected by ``members`` (one language pool)."""
    fused = zscore(signals.dense[members]) + SENTENCE_WEIGHT * zscore(signals.sentence[members])
    guard = lexical_guard(language_coverage)
    if guard > 0:
        fused = fused + LEXICAL_WEIGHT * guard * zscore(signals.lexical[members])
    return fused


def fuse(
    signals: Signals,
    languages: np.ndarray,
    question_language: str,
    allowed: np.ndarray | None = None,
) -> Fused:
    """Fused, pooled and calibrated scores for every passage (see the module docstring)."""
    allowed = np.ones(len(languages), dtype=bool) if allowed is None else allowed
    same = allowed & (languages == question_language)
    other = allowed & (languages != question_language)
    features = _features(signals, same, other)
    p_other, answerable = _decide(features, same.any(), other.any())
    scores = np.full(len(languages), -np.inf)
    for members, p_pool in ((same, 1.0 - p_other), (other, p_other)):
        if not members.any():
            continue
        coverage = _pool_coverage(signals, set(languages[members].tolist()))
        fused = pool_scores(signals, members, coverage)
        scores[members] = answerable * p_pool * np.exp((fused - fused.max()) / TEMPERATURE)
    return Fused(scores, answerable, p_other, features)


def fuse_candidates(
    signals: Signals,
    languages: np.ndarray,
    question_language: str,
    pools: dict[str, PoolSummary],
) -> Fused:
    """:func:`fuse` over candidates only: ``signals`` and ``languages`` are the candidates',
    ``pools`` summarises each allowed language over all its passages (candidates or not).

    With every passage a candidate and exact summaries it gives :func:`fuse`'s scores (up to
    rounding); with fewer, a pool's z-scores and features still use its whole-pool statistics.
    """
    same_languages = [lang for lang in pools if lang == question_language]
    other_languages = [lang for lang in pools if lang != question_language]
    same, other = (
        PoolSummary.merge([pools[lang] for lang in names]) if names else None
        for names in (same_languages, other_languages)
    )
    features = _summary_features(same, other)
    p_other, answerable = _decide(features, same is not None, other is not None)
    scores = np.full(len(languages), -np.inf)
    for pool_languages, summary, p_pool in (
        (same_languages, same, 1.0 - p_other),
        (other_languages, other, p_other),
    ):
        members = np.isin(languages, pool_languages)
        if summary is None or not members.any():
            continue
        fused = _standardised(signals.dense[members], summary.dense)
        fused = fused + SENTENCE_WEIGHT * _standardised(signals.sentence[members], summary.sentence)
        guard = lexical_guard(_pool_coverage(signals, pool_languages))
        if guard > 0:
            fused = fused + LEXICAL_WEIGHT * guard * _standardised(
                signals.lexical[members], summary.lexical
            )
        scores[members] = answerable * p_pool * np.exp((fused - fused.max()) / TEMPERATURE)
    return Fused(scores, answerable, p_other, features)


def _decide(
    features: dict[str, float | None], has_same: bool, has_other: bool
) -> tuple[float, float]:
    """(P(other pool), P(answerable)) from the features; records p_other among them."""
    if has_same and has_other:
        p_other = POOL_MODEL.probability(features)
    else:
        p_other = 0.0 if has_same else 1.0
    features["p_other"] = p_other
    return p_other, ANSWER_MODEL.probability(features)


def _pool_coverage(signals: Signals, pool_languages: Iterable[str]) -> float:
    """The pool's word coverage for the lexical guard: its best language's."""
    return max(signals.language_coverage.get(lang, 0.0) for lang in pool_languages)


def _standardised(values: np.ndarray, moments: Moments) -> np.ndarray:
    """:func:`zscore` against whole-pool moments rather than the values' own."""
    values = values.astype(np.float64)
    if moments.std < FLAT_SPREAD:
        return np.zeros_like(values)
    return (values - moments.mean) / moments.std


def _features(signals: Signals, same: np.ndarray, other: np.ndarray) -> dict[str, float | None]:
    def top(values: np.ndarray, members: np.ndarray) -> float | None:
        return float(values[members].max()) if members.any() else None

    def lead(values: np.ndarray, members: np.ndarray) -> float | None:
        if not members.any():
            return None
        pool = values[members]
        return float(pool.max() - pool.mean())

    def gap(values: np.ndarray) -> float | None:
        a, b = top(values, same), top(values, other)
        return None if a is None or b is None else a - b

    return {
        "dense_gap": gap(signals.dense),
        "sentence_gap": gap(signals.sentence),
        "coverage_same": top(signals.coverage, same),
        "coverage_other": top(signals.coverage, other),
        "dense_lead_same": lead(signals.dense, same),
        "sentence_lead_same": lead(signals.sentence, same),
        "dense_lead_other": lead(signals.dense, other),
        "sentence_lead_other": lead(signals.sentence, other),
    }


def _summary_features(
    same: PoolSummary | None, other: PoolSummary | None
) -> dict[str, float | None]:
    """:func:`_features` from pool summaries (candidate mode)."""

    def signal(summary: PoolSummary | None, name: str) -> Moments | None:
        return None if summary is None else getattr(summary, name)

    def lead(summary: PoolSummary | None, name: str) -> float | None:
        moments = signal(summary, name)
        return None if moments is None else moments.top - moments.mean

    def gap(name: str) -> float | None:
        a, b = signal(same, name), signal(other, name)
        return None if a is None or b is None else a.top - b.top

    return {
        "dense_gap": gap("dense"),
        "sentence_gap": gap("sentence"),
        "coverage_same": None if same is None else same.coverage_top,
        "coverage_other": None if other is None else other.coverage_top,
        "dense_lead_same": lead(same, "dense"),
        "sentence_lead_same": lead(same, "sentence"),
        "dense_lead_other": lead(other, "dense"),
        "sentence_lead_other": lead(other, "sentence"),
    }
