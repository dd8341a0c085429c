"""Generators of inference tasks: lexical entailment, answer checking, numeric and quantifier inference."""

from __future__ import annotations

import random

from .common import FIRST_NAMES, Example, TaskSpec, capitalize_first, load_json, number_to_words, pick, with_article

# The word lists live in data/nli.json.
_DATA = load_json("nli.json")

# --- lexical_nli -----------------------------------------------------------------------------------

# hypernym -> hyponyms. Replacing a hyponym by its hypernym is entailed; the reverse is neutral.
HYPERNYMS = _DATA["hypernyms"]
# (progressive verb phrase, hypernyms it fits)
_ACTIVITIES = _DATA["activities"]
# person -> more general person words (entailed when the subject is generalised)
_PEOPLE = _DATA["people"]
_PERSON_ADJECTIVES = ["tall", "young", "old", "smiling", "tired", "bearded", "cheerful"]
_PLACES = ["in the park", "on the street", "at home", "near a lake", "in a garage", "at the market", "outside"]

# (noun, adjective, antonym, synonym or None, unrelated-but-compatible adjective)
_PROPERTY_PAIRS = _DATA["property_pairs"]

_LEXICAL_TEMPLATES = (
    "Premise: {p}\nHypothesis: {h}",
    "Sentence 1: {p}\nSentence 2: {h}",
    "Premise: {p} Hypothesis: {h}",
    "P: {p}\nH: {h}",
    'Given "{p}", what about "{h}"?',
    "Text: {p}\nClaim: {h}",
)


def _activity_sentence(subject: str, verb: str, obj: str, place: str | None, negated: bool = False) -> str:
    if negated:
        body = f"{with_article(subject)} is not {verb} any {obj}"
    else:
        body = f"{with_article(subject)} is {verb} {with_article(obj)}"
    return capitalize_first(body + (f" {place}" if place else "") + ".")


def gen_lexical_nli(rng: random.Random) -> Example:
    label = pick(rng, ("entailment", "neutral", "contradiction"))
    if rng.random() < 0.35:
        noun, adj, antonym, synonym, unrelated = pick(rng, _PROPERTY_PAIRS)
        # Sometimes the premise uses the second member of the pair, so both words occur on both sides.
        if rng.random() < 0.5 and label != "entailment":
            adj, antonym = antonym, adj
        det = pick(rng, ("The", "This", "That"))
        premise = f"{det} {noun} is {adj}."
        if label == "entailment":
            other = synonym if synonym and rng.random() < 0.6 else None
            hypothesis = f"{det} {noun} is {other}." if other else f"{det} {noun} is not {antonym}."
        elif label == "contradiction":
            hypothesis = pick(rng, (f"{det} {noun} is {antonym}.", f"{det} {noun} is not {adj}."))
        else:
            hypothesis = f"{det} {noun} is {unrelated}."
    else:
        verb, classes = pick(rng, _ACTIVITIES)
        hypernym = pick(rng, classes)
        hyponym = pick(rng, HYPERNYMS[hypernym])
        person = pick(rng, list(_PEOPLE))
        adjective = pick(rng, _PERSON_ADJECTIVES) if rng.random() < 0.3 else None
        subject = f"{adjective} {person}" if adjective else person
        place = pick(rng, _PLACES) if rng.random() < 0.3 else None
        if label == "entailment":
            move = rng.randrange(3)
            premise = _activity_sentence(subject, verb, hyponym, place)
            if move == 0:
                hypothesis = _activity_sentence(subject, verb, hypernym, place)
            elif move == 1:
                hypothesis = _activity_sentence(pick(rng, _PEOPLE[person]), verb, hyponym, None)
            else:  # drop the adjective and place; generalise the object too when there is nothing to drop
                keep_object = (adjective or place) and rng.random() < 0.5
                hypothesis = _activity_sentence(person, verb, hyponym if keep_object else hypernym, None)
        elif label == "neutral":
            move = rng.randrange(3)
            if move == 0:  # hypernym in the premise, hyponym in the hypothesis
                premise = _activity_sentence(subject, verb, hypernym, place)
                hypothesis = _activity_sentence(subject, verb, hyponym, place)
            elif move == 1:  # the hypothesis adds a detail the premise does not state
                premise = _activity_sentence(person, verb, hyponym, None)
                hypothesis = _activity_sentence(f"{pick(rng, _PERSON_ADJECTIVES)} {person}", verb, hyponym, None)
            else:
                premise = _activity_sentence(subject, verb, hyponym, None)
                hypothesis = _activity_sentence(subject, verb, hyponym, pick(rng, _PLACES))
        else:
            premise = _activity_sentence(subject, verb, hyponym, place)
            if rng.random() < 0.5:
                hypothesis = _activity_sentence(person, verb, hypernym, None, negated=True)
            else:
                hypothesis = f"Nobody is {verb} {with_article(hypernym if rng.random() < 0.5 else hyponym)}."
    return pick(rng, _LEXICAL_TEMPLATES).format(p=premise, h=hypothesis), label


# --- answer_check ----------------------------------------------------------------------------------

_CITIES = [
    "Paris",
    "Madrid",
    "Lisbon",
    "Berlin",
    "Dublin",
    "Oslo",
    "Rome",
    "Vienna",
    "Prague",
    "Boston",
    "Tokyo",
    "Lima",
    "Cairo",
    "Seoul",
    "Toronto",
    "Sydney",
]
# attribute -> (question templates, value pool, answer-sentence templates)
_ATTRIBUTES = {
    "work": (
        ["Where does {n} work?", "At which place does {n} work?"],
        ["bakery", "hospital", "library", "bank", "post office", "school", "museum", "hotel", "factory"],
        [
            "{n} works at the {v}.",
            "The {v} is where {n} works.",
            "{n} has a job at the {v}.",
            "Every morning {n} goes to work at the {v}.",
        ],
    ),
    "live": (
        ["Where does {n} live?", "In which city does {n} live?"],
        _CITIES,
        ["{n} lives in {v}.", "{n} has an apartment in {v} and lives there.", "{n}'s home is in {v}."],
    ),
    "age": (
        ["How old is {n}?", "What is {n}'s age?"],
        [str(a) for a in range(8, 80)],
        ["{n} is {v} years old.", "{n} turned {v} this year.", "{n} is a {v}-year-old."],
    ),
    "pet": (
        ["What pet does {n} have?", "Which animal does {n} keep as a pet?"],
        ["dog", "cat", "parrot", "hamster", "turtle", "rabbit", "goldfish"],
        ["{n} has a {v} as a pet.", "{n}'s pet is a {v}.", "{n} keeps a {v} at home as a pet."],
    ),
    "food": (
        ["What is {n}'s favourite food?", "Which food does {n} like best?"],
        ["pizza", "sushi", "pasta", "curry", "tacos", "soup", "salad", "dumplings"],
        ["{n}'s favourite food is {v}.", "{n} likes {v} more than any other food.", "Above all, {n} loves {v}."],
    ),
    "wake": (
        ["When does {n} wake up?", "At what time does {n} get up?"],
        [f"{h} o'clock" for h in ("five", "six", "seven", "eight", "nine")],
        ["{n} wakes up at {v}.", "{n} gets up at {v} every day.", "Every day {n}'s alarm rings at {v}."],
    ),
    "siblings": (
        ["How many brothers does {n} have?", "What is the number of {n}'s brothers?"],
        ["one", "two", "three", "four"],
        ["{n} has {v} brothers.", "{n} grew up with {v} brothers.", "There are {v} brothers in {n}'s family."],
    ),
    "car": (
        ["What colour is {n}'s car?", "Which colour is the car that {n} drives?"],
        ["red", "blue", "green", "black", "white", "silver", "yellow"],
        ["{n}'s car is {v}.", "{n} drives a {v} car.", "The car {n} owns is {v}."],
    ),
    "month": (
        ["In which month was {n} born?", "When is {n}'s birthday month?"],
        ["January", "March", "May", "July", "September", "November", "April", "June"],
        ["{n} was born in {v}.", "{n}'s birthday is in {v}.", "{n} celebrates a birthday every {v}."],
    ),
    "instrument": (
        ["Which instrument does {n} play?", "What instrument can {n} play?"],
        ["violin", "piano", "guitar", "flute", "drums", "cello", "trumpet"],
        ["{n} plays the {v}.", "{n} has played the {v} since childhood.", "{n} practises the {v} daily."],
    ),
}
_QA_TEMPLATES = (
    "Question: {q}\nSentence: {s}",
    "Question: {q}\nCandidate answer: {s}",
    "Q: {q}\nA: {s}",
    "Does the sentence answer the question?\nQuestion: {q}\nSentence: {s}",
    "{q}\n{s}",
    'Question: "{q}" Sentence: "{s}"',
)


def gen_answer_check(rng: random.Random) -> Example:
    name = pick(rng, FIRST_NAMES)
    attribute = pick(rng, list(_ATTRIBUTES))
    questions, values, answers = _ATTRIBUTES[attribute]
    question = pick(rng, questions).format(n=name)
    answers_it = rng.random() < 0.5
    if answers_it:
        sentence = pick(rng, answers).format(n=name, v=pick(rng, values))
    elif rng.random() < 0.6:  # same person, another attribute
        other = pick(rng, [a for a in _ATTRIBUTES if a != attribute])
        _, other_values, other_answers = _ATTRIBUTES[other]
        sentence = pick(rng, other_answers).format(n=name, v=pick(rng, other_values))
    else:  # same attribute, another person
        other_name = pick(rng, [n for n in FIRST_NAMES if n != name])
        sentence = pick(rng, answers).format(n=other_name, v=pick(rng, values))
    return pick(rng, _QA_TEMPLATES).format(q=question, s=sentence), "yes" if answers_it else "no"


# --- numeric_nli -----------------------------------------------------------------------------------

_COUNT_NOUNS = ["apple", "book", "coin", "stamp", "marble", "pencil", "cookie", "ticket", "shell", "card"]
_COMPARISONS = {  # phrase -> test on (actual, k)
    "more than": lambda a, k: a > k,
    "fewer than": lambda a, k: a < k,
    "at least": lambda a, k: a >= k,
    "at most": lambda a, k: a <= k,
    "exactly": lambda a, k: a == k,
}


def _count(rng: random.Random, n: int, noun: str) -> str:
    """'7 apples', 'seven apples' or '1 apple'."""
    return f"{number_to_words(n) if rng.random() < 0.3 else n} {noun if n == 1 else noun + 's'}"


def gen_numeric_nli(rng: random.Random) -> Example:
    name, noun = pick(rng, FIRST_NAMES), pick(rng, _COUNT_NOUNS)
    kind = rng.randrange(4)
    if kind == 0:
        actual = rng.randint(1, 20)
        premise = pick(rng, (f"{name} has {_count(rng, actual, noun)}.", f"{name} owns {_count(rng, actual, noun)}."))
    elif kind == 1:
        actual = rng.randint(1, 20)
        premise = f"There {'is' if actual == 1 else 'are'} {_count(rng, actual, noun)} on the table."
        name = None
    elif kind == 2:
        a, b = rng.randint(1, 10), rng.randint(1, 10)
        actual = a + b
        premise = f"{name} had {_count(rng, a, noun)} and then got {number_to_words(b)} more."
    else:
        a = rng.randint(3, 20)
        b = rng.randint(1, a - 1)
        actual = a - b
        premise = f"{name} had {_count(rng, a, noun)} and gave {number_to_words(b)} away."
    want = rng.random() < 0.5
    candidates: list[int] = []
    while not candidates:  # e.g. "more than k" with actual = 1 has no true k >= 1; pick another comparison
        comparison = pick(rng, list(_COMPARISONS))
        candidates = [k for k in range(max(1, actual - 6), actual + 7) if _COMPARISONS[comparison](actual, k) == want]
    k = pick(rng, candidates)
    quantity = f"{comparison} {_count(rng, k, noun)}"
    if name is None:
        hypothesis = f"There are {quantity} on the table."
    elif kind in (2, 3):
        hypothesis = f"{name} now has {quantity}."
    else:
        hypothesis = f"{name} has {quantity}."
    template = pick(
        rng,
        (
            "Premise: {p}\nHypothesis: {h}",
            "Premise: {p} Hypothesis: {h}",
            "Fact: {p}\nClaim: {h}",
            "Statement: {p}\nConclusion: {h}",
            "P: {p}\nH: {h}",
        ),
    )
    return template.format(p=premise, h=hypothesis), "entailment" if want else "contradiction"


# --- quantifier_nli (held out) ---------------------------------------------------------------------

_GROUPS = [
    ("students", "student", "in the class"),
    ("guests", "guest", "at the party"),
    ("players", "player", "on the team"),
    ("workers", "worker", "in the factory"),
    ("children", "child", "in the school"),
    ("passengers", "passenger", "on the bus"),
]
_PREDICATES = ["passed the exam", "arrived late", "wore a hat", "liked the food", "brought an umbrella", "spoke French"]
# (premise quantifier, hypothesis quantifier) -> label; quantifier sentence builders below.
_QUANTIFIER_TABLE = {
    ("all", "some"): "entailment",
    ("all", "no"): "contradiction",
    ("all", "not all"): "contradiction",
    ("some", "all"): "neutral",
    ("some", "no"): "contradiction",
    ("some", "not all"): "neutral",
    ("no", "some"): "contradiction",
    ("no", "all"): "contradiction",
    ("no", "not all"): "entailment",
    ("not all", "no"): "neutral",
    ("not all", "all"): "contradiction",
    ("not all", "some"): "neutral",
    ("most", "some"): "entailment",
    ("most", "no"): "contradiction",
    ("most", "all"): "neutral",
}


def _quantified(quantifier: str, plural: str, singular: str, where: str, predicate: str) -> str:
    return {
        "all": f"All the {plural} {where} {predicate}.",
        "some": f"Some of the {plural} {where} {predicate}.",
        "no": f"None of the {plural} {where} {predicate}.",
        "not all": f"Not every {singular} {where} {predicate}.",
        "most": f"Most of the {plural} {where} {predicate}.",
    }[quantifier]


def gen_quantifier_nli(rng: random.Random) -> Example:
    plural, singular, where = pick(rng, _GROUPS)
    predicate = pick(rng, _PREDICATES)
    label = pick(rng, ("entailment", "neutral", "contradiction"))  # label first keeps the classes balanced
    q_premise, q_hypothesis = pick(rng, [pair for pair, value in _QUANTIFIER_TABLE.items() if value == label])
    premise = _quantified(q_premise, plural, singular, where, predicate)
    hypothesis = _quantified(q_hypothesis, plural, singular, where, predicate)
    return pick(rng, _LEXICAL_TEMPLATES).format(p=premise, h=hypothesis), label


SPECS = [
    TaskSpec(
        name="lexical_nli",
        category="nli",
        description="Decide whether a premise entails, contradicts or is neutral to a hypothesis via word meanings.",
        instruction="Does the premise entail the hypothesis? Answer with entailment, neutral or contradiction only.",
        metric="exact_match",
        held_out=False,
        source="Sentence pairs from a hypernym lexicon (11 classes, 68 hyponyms; hyponym->hypernym = entailment, "
        "reverse or added detail = neutral, negated hypernym = contradiction) and 22 adjective "
        "antonym/synonym pairs; labels balanced; 6 templates.",
        generate=gen_lexical_nli,
    ),
    TaskSpec(
        name="answer_check",
        category="nli",
        description="Decide whether a sentence answers a question about a person.",
        instruction="Does the sentence answer the question? Answer with yes or no only.",
        metric="exact_match",
        held_out=False,
        source="Ten personal attributes (work place, city, age, pet, ...) with question and statement templates; "
        "'no' pairs state another attribute of the same person or the same attribute of another person; "
        "labels balanced.",
        generate=gen_answer_check,
    ),
    TaskSpec(
        name="numeric_nli",
        category="nli",
        description="Decide whether a quantity statement (more than, at least, exactly, ...) follows from a premise.",
        instruction="Does the premise entail the hypothesis? Answer with entailment or contradiction only.",
        metric="exact_match",
        held_out=False,
        source="Premises with counts 1-20 (some as a sum or difference), hypotheses with more than / fewer than / "
        "at least / at most / exactly k; numbers in digits or words; labels balanced.",
        generate=gen_numeric_nli,
    ),
    TaskSpec(
        name="quantifier_nli",
        category="nli",
        description="Decide the relation between two sentences that differ in their quantifier (all, some, no, most).",
        instruction="Does the premise entail the hypothesis? Answer with entailment, neutral or contradiction only.",
        metric="exact_match",
        held_out=True,
        source="Premise/hypothesis pairs over 6 groups x 6 predicates with quantifiers all/some/no/not all/most; "
        "label from a fixed table of quantifier entailments (existential import assumed).",
        generate=gen_quantifier_nli,
    ),
]
