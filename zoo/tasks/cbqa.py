"""Generators of closed-book fact questions from tables in zoo/tasks/data/: capitals, element symbols, authors, ..."""

from __future__ import annotations

import random

from .common import Example, TaskSpec, capitalize_first, load_json, pick

# A fact table is finite, so distinct examples are distinct (fact, phrasing) pairs: each question is a
# prefix + a question form. Splits never share an input string, but a test fact normally appears in train
# under another phrasing -- memorising the facts is the skill these adapters learn.
_PREFIXES = (
    "",
    "Quick question: ",
    "Quiz: ",
    "Q: ",
    "Trivia: ",
    "I always forget this. ",
    "Help me out. ",
    "Test your knowledge: ",
)


def _ask(rng: random.Random, forms: tuple[str, ...], prefixes: tuple[str, ...] = _PREFIXES, **slots) -> str:
    question = capitalize_first(pick(rng, forms).format(**slots))
    return pick(rng, prefixes) + question


def _possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


_CAPITAL_FORMS = (
    "What is the capital of {c}?",
    "What is the capital city of {c}?",
    "Which city is the capital of {c}?",
    "Name the capital of {c}.",
    "{cs} capital is which city?",
    "The capital of {c} is called what?",
    "What city serves as the capital of {c}?",
    "Capital of {c}?",
    "Tell me the capital of {c}.",
    "What's the capital of {c}?",
    "Which city is {cs} capital?",
    "{c}: what is its capital city?",
)


def gen_country_capital(rng: random.Random) -> Example:
    row = pick(rng, load_json("capitals.json"))
    c = row["country"]
    return _ask(rng, _CAPITAL_FORMS, c=c, cs=_possessive(c)), row["answers"]


_SYMBOL_FORMS = (
    "What is the chemical symbol for {e}?",
    "Which symbol represents {e} on the periodic table?",
    "Give the element symbol of {e}.",
    "{e} has which chemical symbol?",
    "What is the symbol of the element {e}?",
    "How is {e} abbreviated on the periodic table?",
    "Symbol for {e}?",
    "Write the chemical symbol of {e}.",
)
_SCIENCE_PREFIXES = ("", "Chemistry quiz: ", "Q: ", "Quick question: ", "Science trivia: ", "Periodic table question: ")


def gen_element_symbol(rng: random.Random) -> Example:
    row = pick(rng, load_json("elements.json"))
    name = row["name"] if rng.random() < 0.3 else row["name"].lower()
    return _ask(rng, _SYMBOL_FORMS, _SCIENCE_PREFIXES, e=name), row["symbol"]


_AUTHOR_FORMS = (
    "Who wrote {t}?",
    "Who is the author of {t}?",
    "{t} was written by whom?",
    "Name the author of {t}.",
    "Which writer wrote {t}?",
    "Who penned {t}?",
    "Tell me who wrote {t}.",
    "The book {t} is by which author?",
)
_BOOK_PREFIXES = ("", "Literature quiz: ", "Q: ", "Quick question: ", "Book trivia: ", "For my reading list: ")


def gen_book_author(rng: random.Random) -> Example:
    row = pick(rng, load_json("books.json"))
    title = row["title"] if rng.random() < 0.5 else f'"{row["title"]}"'
    return _ask(rng, _AUTHOR_FORMS, _BOOK_PREFIXES, t=title), row["answers"]


_ATOMIC_NUMBER_FORMS = (
    "What is the atomic number of {e}?",
    "How many protons does an atom of {e} have?",
    "Which atomic number does {e} have?",
    "Give the atomic number of {e}.",
    "Atomic number of {e}?",
    "{e} has what atomic number?",
    "What number is {e} in the periodic table?",
)


def gen_element_atomic_number(rng: random.Random) -> Example:
    row = pick(rng, load_json("elements.json"))
    name = row["name"] if rng.random() < 0.3 else row["name"].lower()
    return _ask(rng, _ATOMIC_NUMBER_FORMS, _SCIENCE_PREFIXES, e=name), str(row["number"])


_CURRENCY_FORMS = (
    "What is the currency of {c}?",
    "Which currency is used in {c}?",
    "What money do people use in {c}?",
    "Name the official currency of {c}.",
    "{cs} currency is called what?",
    "What do you pay with in {c}?",
    "Currency of {c}?",
)


def gen_country_currency(rng: random.Random) -> Example:
    row = pick(rng, load_json("currencies.json"))
    c = row["country"]
    return _ask(rng, _CURRENCY_FORMS, c=c, cs=_possessive(c)), row["answers"]


def _fact_source(table: str, n_facts: str, n_forms: int, n_prefixes: int) -> str:
    return (
        f"Closed-book facts from zoo/tasks/data/{table} ({n_facts}); an input is a (fact, phrasing) pair "
        f"from {n_forms} question forms x {n_prefixes} prefixes (plus casing/quoting variants). Splits never "
        f"share an input string, but test facts normally also appear in train under a different phrasing: "
        f"the adapter is meant to memorise the facts."
    )


SPECS = [
    TaskSpec(
        name="country_capital",
        category="cbqa",
        description="Name the capital city of a country.",
        instruction="Answer the question with the name of the city only.",
        metric="exact_match",
        held_out=False,
        source=_fact_source(
            "capitals.json", "190 sovereign states, alternative capitals listed", len(_CAPITAL_FORMS), len(_PREFIXES)
        ),
        generate=gen_country_capital,
    ),
    TaskSpec(
        name="element_symbol",
        category="cbqa",
        description="Give the chemical symbol of an element.",
        instruction="Answer with the chemical symbol only.",
        metric="exact_match",
        held_out=False,
        source=_fact_source("elements.json", "all 118 elements", len(_SYMBOL_FORMS), len(_SCIENCE_PREFIXES)),
        generate=gen_element_symbol,
    ),
    TaskSpec(
        name="book_author",
        category="cbqa",
        description="Name the author of a famous book.",
        instruction="Answer with the author's name only.",
        metric="exact_match",
        held_out=False,
        source=_fact_source("books.json", "174 famous books", len(_AUTHOR_FORMS), len(_BOOK_PREFIXES)),
        generate=gen_book_author,
    ),
    TaskSpec(
        name="element_atomic_number",
        category="cbqa",
        description="Give the atomic number of a chemical element.",
        instruction="Answer with the atomic number only.",
        metric="exact_match",
        held_out=True,
        source=_fact_source("elements.json", "all 118 elements", len(_ATOMIC_NUMBER_FORMS), len(_SCIENCE_PREFIXES)),
        generate=gen_element_atomic_number,
    ),
    TaskSpec(
        name="country_currency",
        category="cbqa",
        description="Name the currency used in a country.",
        instruction="Answer with the name of the currency only.",
        metric="exact_match",
        held_out=True,
        source=_fact_source(
            "currencies.json", "126 countries, short forms listed as alternatives", len(_CURRENCY_FORMS), len(_PREFIXES)
        ),
        generate=gen_country_currency,
    ),
]
