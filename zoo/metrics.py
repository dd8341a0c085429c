"""Scoring one generated answer against its target(s): exact match, ROUGE-L and BLEU, all on a 0..100 scale.

Conventions, chosen once for every caller (benchmark, baselines, UI):

1. The prediction is cut to its first non-empty line, as the paper scores it (the official code strips the
   output and keeps its first line). Targets are used whole.
2. Every metric returns a float in 0..100: exact match is 0 or 100, ROUGE-L F1 and BLEU are percentages.
   One scale lets a table average or compare columns without rescaling.
3. A target may be one string or a list of accepted strings (aliases, several references).

Differences from the official LoGo evaluation, on purpose:
- BLEU: the official code uses NLTK's `sentence_bleu` on whitespace tokens with smoothing method 1 (0..1).
  We use `sacrebleu.sentence_bleu` (13a tokenisation, exponential smoothing, 0..100), the reproducible
  standard; expect values close to, not identical with, the paper's.
- ROUGE-L: same as the official code (`rouge_score`, rougeL F1, Porter stemmer), times 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

METRICS = ("exact_match", "rouge_l", "bleu")

Target = str | Sequence[str]


def first_line(text: str) -> str:
    """The first non-empty line of `text`, stripped ("" when there is none)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def normalise(text: str) -> str:
    """The official LoGo normalisation for exact match: strip, lower-case, drop every "."."""
    return text.strip().lower().replace(".", "")


def _targets(target: Target) -> list[str]:
    targets = [target] if isinstance(target, str) else list(target)
    if not targets:
        raise ValueError("no target to score against: give a string or a non-empty list of strings")
    return targets


def exact_match(prediction: str, target: Target) -> float:
    """100.0 if the normalised first line of `prediction` equals any normalised target, else 0.0."""
    answer = normalise(first_line(prediction))
    return 100.0 if any(answer == normalise(t) for t in _targets(target)) else 0.0


@cache
def _rouge_l_scorer():
    """Built on first use: rouge_score imports NLTK, which takes seconds; nothing heavy at import."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, target: Target) -> float:
    """ROUGE-L F1 x 100 of the first line of `prediction`, the best over targets."""
    answer = first_line(prediction)
    scorer = _rouge_l_scorer()
    return 100.0 * max(scorer.score(t, answer)["rougeL"].fmeasure for t in _targets(target))


def bleu(prediction: str, target: Target) -> float:
    """Sentence BLEU-4 (sacrebleu, 0..100) of the first line of `prediction`.

    Several targets are several references of one multi-reference BLEU (sacrebleu's definition),
    not a maximum over single-reference scores.
    """
    import sacrebleu  # imported on first use, like rouge_score

    return float(sacrebleu.sentence_bleu(first_line(prediction), _targets(target)).score)


_SCORERS = {"exact_match": exact_match, "rouge_l": rouge_l, "bleu": bleu}


def score(metric: str, prediction: str, target: Target) -> float:
    """Score `prediction` with the metric named `metric` (one of METRICS); 0..100."""
    if metric not in _SCORERS:
        raise ValueError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    return _SCORERS[metric](prediction, target)
