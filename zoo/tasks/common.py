"""Shared pieces of the task generators: the TaskSpec record, vocabularies and small text helpers."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

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
    """Load a data table shipped in zoo/tasks/data/."""
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


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


# --- Shared vocabularies ----------------------------------------------------------------------------

FIRST_NAMES = [
    "Alice",
    "Bob",
    "Claire",
    "Dave",
    "Emma",
    "Frank",
    "Grace",
    "Henry",
    "Iris",
    "Jack",
    "Karen",
    "Leo",
    "Maya",
    "Nina",
    "Oscar",
    "Paula",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
    "Vera",
    "Will",
    "Xena",
    "Yusuf",
    "Zoe",
    "Amir",
    "Beatriz",
    "Chen",
    "Dmitri",
    "Elif",
    "Fatima",
    "Gustav",
    "Hana",
    "Ivan",
    "Julia",
    "Kenji",
    "Lucia",
    "Mateo",
    "Nadia",
    "Olga",
    "Pedro",
    "Ravi",
    "Sofia",
    "Tomas",
    "Ursula",
    "Victor",
    "Wen",
    "Yara",
    "Zain",
    "Anna",
    "Ben",
    "Carla",
    "Diego",
    "Eva",
    "Felix",
    "Gina",
    "Hugo",
    "Ines",
    "Jonas",
]

LAST_NAMES = [
    "Smith",
    "Garcia",
    "Muller",
    "Rossi",
    "Dubois",
    "Novak",
    "Kowalski",
    "Tanaka",
    "Kim",
    "Silva",
    "Jensen",
    "Nguyen",
    "Patel",
    "Okafor",
    "Haddad",
    "Ivanova",
    "Larsen",
    "Moreau",
    "Bianchi",
    "Fischer",
    "Costa",
    "Lopez",
    "Yilmaz",
    "Hansen",
    "Petrov",
    "Santos",
    "Schmidt",
    "Martin",
    "Brown",
    "Wilson",
    "Murphy",
    "Kelly",
    "Sato",
    "Wang",
    "Singh",
    "Mensah",
    "Adeyemi",
    "Berg",
    "Lindqvist",
    "Romero",
    "Vargas",
    "Castillo",
    "Horvat",
    "Papadopoulos",
    "Nowak",
    "Weber",
    "Keller",
    "Meyer",
    "Ferrari",
    "Conti",
]
