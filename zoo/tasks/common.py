"""Shared pieces of the task generators: the TaskSpec record, vocabularies and small text helpers."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# English month names, spelt out in dates (never the locale's: generated data must be the same everywhere)
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

CATEGORIES = ("reasoning", "translation", "struct2text", "cbqa", "nli", "code", "classification")
METRICS = ("exact_match", "rouge_l", "bleu")

Target = str | list[str]
Example = tuple[str, Target]

DATA_DIR = Path(__file__).parent / "data"


@dataclass(frozen=True)
class TaskSpec:
    """One task: metadata written to task.json plus a generator of single (input, target) examples."""

    name: str
    category: str
    description: str  # one sentence
    instruction: str  # zero-shot instruction placed before the input
    metric: str  # one of METRICS
    held_out: bool  # True: no adapter is trained on it; it tests generalisation
    source: str  # how the data is made
    generate: Callable[[random.Random], Example]


def task_rng(seed: int, task_name: str) -> random.Random:
    """RNG seeded from (global seed, task name) through sha256, stable across processes (unlike hash())."""
    digest = hashlib.sha256(f"{seed}/{task_name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@cache
def load_json(name: str):
    """A data file of zoo/tasks/data/ (word lists, lexicons, templates), read once per process.

    Every caller gets the same object, so generators read these tables and never change them.
    """
    path = DATA_DIR / name
    if not path.is_file():
        known = sorted(p.name for p in DATA_DIR.glob("*.json"))
        raise FileNotFoundError(f"no task data file {name!r} in {DATA_DIR}; the files there are {known}")
    return json.loads(path.read_text(encoding="utf-8"))


# --- English helpers -------------------------------------------------------------------------------

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_to_words(n: int, use_and: bool = False) -> str:
    """English words for 0 <= n < 10**9 in the American style ("four thousand seven hundred twenty-one")."""
    if not 0 <= n < 10**9:
        raise ValueError(f"out of range: {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        head = f"{_ONES[hundreds]} hundred"
        return head if not rest else f"{head} {'and ' if use_and else ''}{number_to_words(rest)}"
    for size, word in ((10**6, "million"), (1000, "thousand")):
        if n >= size:
            high, rest = divmod(n, size)
            head = f"{number_to_words(high, use_and)} {word}"
            if not rest:
                return head
            link = "and " if use_and and rest < 100 else ""
            return f"{head} {link}{number_to_words(rest, use_and)}"
    raise AssertionError("unreachable")


def a_or_an(phrase: str) -> str:
    """Indefinite article for an English noun phrase."""
    first = phrase.split()[0].lower()
    vowel_sound = first[0] in "aeiou" and not first.startswith(("uni", "use", "eu", "one"))
    return "an" if vowel_sound or first in ("hour", "honest") else "a"


def with_article(phrase: str) -> str:
    return f"{a_or_an(phrase)} {phrase}"


def join_and(items: Sequence[str], oxford: bool = False) -> str:
    """'a', 'a and b', 'a, b and c' (optionally with an Oxford comma)."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + ("," if oxford else "") + f" and {items[-1]}"


def capitalize_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def pick(rng: random.Random, options: Sequence):
    """rng.choice, named for readability at call sites that pick a template or a word."""
    return options[rng.randrange(len(options))]


# --- Shared vocabularies (data/names.json) ---------------------------------------------------------

FIRST_NAMES = load_json("names.json")["first_names"]
LAST_NAMES = load_json("names.json")["last_names"]
