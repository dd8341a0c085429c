"""Generators of BBH-like reasoning tasks: boolean logic, counting, sorting, arithmetic, dates, deduction."""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import random

from .common import FIRST_NAMES, MONTHS, Example, TaskSpec, join_and, load_json, number_to_words, pick, with_article

# The word lists live in data/reasoning.json.
_DATA = load_json("reasoning.json")

# --- boolean_expressions -------------------------------------------------------------------------


def _bool_operand(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.35:
        atom = pick(rng, ("True", "False"))
        return f"not {atom}" if rng.random() < 0.3 else atom
    inner = f"{_bool_operand(rng, depth - 1)} {pick(rng, ('and', 'or'))} {_bool_operand(rng, depth - 1)}"
    return f"{'not ' if rng.random() < 0.3 else ''}( {inner} )"


def gen_boolean_expressions(rng: random.Random) -> Example:
    # BBH spacing ("( True )") keeps the string valid Python, so eval gives the reference answer.
    while True:
        parts = [_bool_operand(rng, rng.randint(0, 2)) for _ in range(rng.randint(2, 3))]
        expr = parts[0]
        for part in parts[1:]:
            expr += f" {pick(rng, ('and', 'or'))} {part}"
        if expr.count("True") + expr.count("False") <= 6:  # BBH-sized: a handful of literals
            break
    if rng.random() < 0.15:
        expr = f"not ( {expr} )"
    value = str(eval(expr))
    template = pick(
        rng,
        (
            "{e} is",
            "Evaluate: {e}",
            "What is the value of {e}?",
            "Is the following expression True or False? {e}",
            "{e} =",
            "Boolean expression: {e}",
            "Compute the truth value of: {e}",
            "Q: {e} is",
        ),
    )
    return template.format(e=expr), value


# --- object_counting -----------------------------------------------------------------------------

# (singular, plural) per category; irregular plurals are spelled out.
# (singular, plural) pairs are tuples: they key the counts of one question.
COUNTABLE_OBJECTS = {
    category: [tuple(pair) for pair in pairs] for category, pairs in _DATA["countable_objects"].items()
}


def _quantity_phrase(count: int, singular: str, plural: str) -> str:
    return with_article(singular) if count == 1 else f"{number_to_words(count)} {plural}"


def gen_object_counting(rng: random.Random) -> Example:
    category = pick(rng, [c for c in COUNTABLE_OBJECTS if c != "objects"])
    n_target_kinds = rng.randint(1, 3)
    targets = rng.sample(COUNTABLE_OBJECTS[category], n_target_kinds)
    others = [item for c, items in COUNTABLE_OBJECTS.items() if c != category for item in items]
    distractors = rng.sample(others, rng.randint(0, 3))
    counts = {item: (1 if rng.random() < 0.55 else rng.randint(2, 3)) for item in targets + distractors}
    items = targets + distractors
    rng.shuffle(items)
    listing = join_and([_quantity_phrase(counts[it], *it) for it in items], oxford=rng.random() < 0.5)
    total = sum(counts[it] for it in targets)
    template = pick(
        rng,
        (
            "I have {l}. How many {c} do I have?",
            "I have {l}. How many {c} are there?",
            "In my house there are {l}. How many {c} are there?",
            "My friend gave me {l}. How many {c} did I get?",
            "At the market I bought {l}. How many {c} did I buy?",
            "There are {l} on the farm. How many {c} are there?",
            "Tom owns {l}. How many {c} does Tom own?",
            "Count the {c}: I have {l}.",
        ),
    )
    return template.format(l=listing, c=category), [str(total), number_to_words(total)]


# --- word_sorting --------------------------------------------------------------------------------

SORTING_WORDS = _DATA["sorting_words"]


def gen_word_sorting(rng: random.Random) -> Example:
    words = rng.sample(SORTING_WORDS, rng.randint(3, 5))
    answer = " ".join(sorted(words))
    template = pick(
        rng,
        (
            "Sort the following words alphabetically: List: {s}",
            "Put these words in alphabetical order: {c}",
            "Alphabetize: {s}",
            "Arrange the words in dictionary order: {c}",
            "List: {s}\nSort them alphabetically.",
            "Order these words from A to Z: {c}",
        ),
    )
    return template.format(s=" ".join(words), c=", ".join(words)), answer


# --- multistep_arithmetic ------------------------------------------------------------------------


def _arith_expr(rng: random.Random, n_ops: int) -> str:
    """A random expression with n_ops binary operators; every compound operand is parenthesised."""
    if n_ops == 0:
        value = rng.randint(0, 9)
        return f"({-value})" if value and rng.random() < 0.15 else str(value)
    left_ops = rng.randint(0, n_ops - 1)
    left, right = _arith_expr(rng, left_ops), _arith_expr(rng, n_ops - 1 - left_ops)
    op = pick(rng, ("+", "-", "*", "+", "-"))
    wrap = lambda s: f"({s})" if " " in s else s  # noqa: E731 - compound operands only
    return f"{wrap(left)} {op} {wrap(right)}"


def gen_multistep_arithmetic(rng: random.Random) -> Example:
    while True:
        expr = _arith_expr(rng, 2 if rng.random() < 0.7 else 3)
        value = eval(expr)
        if abs(value) <= 99:
            break
    template = pick(rng, ("{e} =", "Compute {e}.", "What is {e}?", "Calculate: {e}", "Evaluate {e}", "Solve: {e} = ?"))
    return template.format(e=expr), str(value)


# --- date_understanding --------------------------------------------------------------------------


def _format_date(rng: random.Random, date: dt.date) -> str:
    style = rng.randrange(4)
    if style == 0:
        return date.isoformat()
    if style == 1:
        return f"{MONTHS[date.month - 1]} {date.day}, {date.year}"
    if style == 2:
        return f"{date.day} {MONTHS[date.month - 1]} {date.year}"
    return f"{date.month:02d}/{date.day:02d}/{date.year}"


def gen_date_understanding(rng: random.Random) -> Example:
    # Dates cluster near month ends so that many answers cross a month or year boundary.
    start = dt.date(2000, 1, 1) + dt.timedelta(days=rng.randrange(365 * 30))
    if rng.random() < 0.5:
        month_length = calendar.monthrange(start.year, start.month)[1]
        start = start.replace(day=pick(rng, (1, 2, month_length - 2, month_length - 1, month_length)))
    d = _format_date(rng, start)
    kind = rng.randrange(6)
    if kind == 0:
        n = rng.randint(2, 10)
        question, offset = (
            pick(
                rng,
                (
                    f"What is the date {n} days after {d}?",
                    f"What date is {n} days after {d}?",
                    f"Today is {d}. What is the date in {n} days?",
                ),
            ),
            n,
        )
    elif kind == 1:
        n = rng.randint(2, 10)
        question, offset = (
            pick(
                rng,
                (
                    f"What is the date {n} days before {d}?",
                    f"What date was {n} days before {d}?",
                    f"Today is {d}. What was the date {n} days ago?",
                ),
            ),
            -n,
        )
    elif kind == 2:
        question, offset = (
            pick(rng, (f"Today is {d}. What is the date tomorrow?", f"If today is {d}, what is tomorrow's date?")),
            1,
        )
    elif kind == 3:
        question, offset = (
            pick(rng, (f"Today is {d}. What was the date yesterday?", f"If today is {d}, what was yesterday's date?")),
            -1,
        )
    elif kind == 4:
        weeks = rng.randint(1, 2)
        unit = "one week" if weeks == 1 else "two weeks"
        question, offset = (
            pick(rng, (f"What is the date {unit} after {d}?", f"Today is {d}. What is the date {unit} from today?")),
            7 * weeks,
        )
    else:
        weeks = rng.randint(1, 2)
        unit = "one week" if weeks == 1 else "two weeks"
        question, offset = (
            pick(rng, (f"What was the date {unit} before {d}?", f"Today is {d}. What was the date {unit} ago?")),
            -7 * weeks,
        )
    return question, (start + dt.timedelta(days=offset)).isoformat()


# --- logical_deduction ---------------------------------------------------------------------------

# Each scene: intro template, the three objects, and phrases for "position i" relations on an ordering
# (index 0 = leftmost / first / tallest ...).
_SCENES = [
    {
        "pool": ["red", "green", "blue", "yellow", "black", "white", "orange", "purple", "brown", "grey"],
        "noun": "book",
        "intro": "On a shelf, there are three books: {objs}.",
        "before": "The {a} book is to the left of the {b} book.",
        "after": "The {a} book is to the right of the {b} book.",
        "pos": ["The {a} book is the leftmost.", "The {a} book is in the middle.", "The {a} book is the rightmost."],
        "ask": ["Which book is the leftmost?", "Which book is in the middle?", "Which book is the rightmost?"],
    },
    {
        "pool": ["robin", "owl", "crow", "hawk", "sparrow", "finch", "raven", "pigeon", "parrot", "blue jay"],
        "noun": "bird",
        "intro": "Three birds are sitting on a branch: {objs}.",
        "before": "The {a} is to the left of the {b}.",
        "after": "The {a} is to the right of the {b}.",
        "pos": ["The {a} is the leftmost.", "The {a} is in the middle.", "The {a} is the rightmost."],
        "ask": ["Which bird is the leftmost?", "Which bird is in the middle?", "Which bird is the rightmost?"],
    },
    {
        "pool": FIRST_NAMES,
        "noun": None,
        "intro": "{objs} ran a race.",
        "before": "{a} finished before {b}.",
        "after": "{a} finished after {b}.",
        "pos": ["{a} finished first.", "{a} finished second.", "{a} finished last."],
        "ask": ["Who finished first?", "Who finished second?", "Who finished last?"],
    },
    {
        "pool": FIRST_NAMES,
        "noun": None,
        "intro": "Three friends, {objs}, compared their heights.",
        "before": "{a} is taller than {b}.",
        "after": "{a} is shorter than {b}.",
        "pos": ["{a} is the tallest.", "{a} is neither the tallest nor the shortest.", "{a} is the shortest."],
        "ask": ["Who is the tallest?", "Who is in the middle by height?", "Who is the shortest?"],
    },
    {
        "pool": ["apples", "pears", "mangoes", "plums", "kiwis", "peaches", "cherries", "melons", "lemons", "figs"],
        "noun": None,
        "intro": "A fruit stand sells three fruits: {objs}.",
        "before": "The {a} are more expensive than the {b}.",
        "after": "The {a} are cheaper than the {b}.",
        "pos": [
            "The {a} are the most expensive.",
            "The {a} are the second-most expensive.",
            "The {a} are the cheapest.",
        ],
        "ask": [
            "Which fruit is the most expensive?",
            "Which fruit is the second-most expensive?",
            "Which fruit is the cheapest?",
        ],
    },
]


def _scene_answer(scene: dict, obj: str) -> list[str]:
    if scene["noun"]:
        return [f"the {obj} {scene['noun']}" if scene["noun"] == "book" else f"the {obj}", obj]
    if scene["pool"] is FIRST_NAMES:
        return [obj]
    return [f"the {obj}", obj]


def gen_logical_deduction(rng: random.Random) -> Example:
    scene = pick(rng, _SCENES)
    objs = rng.sample(scene["pool"], 3)
    order = objs[:]
    rng.shuffle(order)  # the hidden truth: order[0] is leftmost / first / tallest / most expensive
    # Every true clue: ("before"/"after", a, b) for pairs and ("pos", a, index) for positions.
    clues = [("before" if i < j else "after", order[i], order[j]) for i, j in itertools.permutations(range(3), 2)]
    clues += [("pos", order[i], i) for i in range(3)]
    rng.shuffle(clues)

    def holds(clue: tuple, candidate: tuple) -> bool:
        kind, a, b = clue
        if kind == "pos":
            return candidate.index(a) == b
        return (candidate.index(a) < candidate.index(b)) == (kind == "before")

    chosen, candidates = [], list(itertools.permutations(objs))
    for clue in clues:
        remaining = [p for p in candidates if holds(clue, p)]
        if len(remaining) < len(candidates):  # only keep clues that cut the search space
            chosen.append(clue)
            candidates = remaining
        if len(candidates) == 1:
            break
    sentences = []
    for kind, a, b in chosen:
        if kind == "pos":
            sentences.append(scene["pos"][b].format(a=a))
        else:
            sentences.append(scene[kind].format(a=a, b=b))
    q = rng.randrange(3)
    listed = [
        with_article(o) if scene["noun"] == "bird" else (f"a {o} one" if scene["noun"] == "book" else o) for o in objs
    ]
    intro = scene["intro"].format(objs=join_and(listed, oxford=rng.random() < 0.5))
    text = " ".join([intro, *sentences, scene["ask"][q]])
    return text, _scene_answer(scene, order[q])


# --- tracking_shuffled_objects (held out) --------------------------------------------------------

_TRACKED = [
    (
        "ball",
        ["red", "blue", "green", "yellow", "purple", "orange", "white", "black", "pink"],
        "are playing a game with balls",
        "swap balls",
        "Which ball does {p} have at the end?",
    ),
    (
        "book",
        ["Frankenstein", "Ulysses", "Hamlet", "Emma", "Dracula", "Moby-Dick", "Beloved", "Lolita"],
        "are each reading a book",
        "trade books",
        "Which book is {p} reading at the end?",
    ),
    (
        "present",
        ["red", "blue", "green", "yellow", "purple", "orange", "white", "black", "pink"],
        "are holding wrapped presents",
        "swap presents",
        "Which present does {p} hold at the end?",
    ),
    ("partner", FIRST_NAMES, "are dancers at a square dance", "trade partners", "Who is {p} dancing with at the end?"),
]


def gen_tracking_shuffled_objects(rng: random.Random) -> Example:
    kind, pool, setup, verb, question = pick(rng, _TRACKED)
    people = rng.sample(FIRST_NAMES, 3)
    items = rng.sample([x for x in pool if x not in people], 3)
    holding = dict(zip(people, items, strict=True))
    if kind == "ball" or kind == "present":
        describe = lambda it: f"a {it} {kind}"  # noqa: E731
        answer_of = lambda it: [f"the {it} {kind}", f"{it} {kind}", it]  # noqa: E731
    elif kind == "book":
        describe = lambda it: it  # noqa: E731
        answer_of = lambda it: [it]  # noqa: E731
    else:
        describe = lambda it: it  # noqa: E731
        answer_of = lambda it: [it]  # noqa: E731
    owns = "is dancing with" if kind == "partner" else ("is reading" if kind == "book" else "has")
    intro = (
        f"{join_and(people)} {setup}. At the start, "
        + join_and([f"{p} {owns} {describe(holding[p])}" for p in people])
        + "."
    )
    steps = []
    for step in range(rng.randint(2, 4)):
        a, b = rng.sample(people, 2)
        holding[a], holding[b] = holding[b], holding[a]
        lead = ["First", "Then", "Next", "Finally"][step] if step < 3 else "Finally"
        steps.append(f"{lead}, {a} and {b} {verb}.")
    target_person = pick(rng, people)
    text = " ".join([intro, *steps, question.format(p=target_person)])
    return text, answer_of(holding[target_person])


SPECS = [
    TaskSpec(
        name="boolean_expressions",
        category="reasoning",
        description="Evaluate a Python-style boolean expression built from True, False, not, and, or and parentheses.",
        instruction="Evaluate the boolean expression. Answer with True or False only.",
        metric="exact_match",
        held_out=False,
        source="Random expression trees over True/False with not/and/or and BBH-style spaced parentheses; "
        "target = Python eval of the expression; 8 phrasing templates.",
        generate=gen_boolean_expressions,
    ),
    TaskSpec(
        name="object_counting",
        category="reasoning",
        description="Count how many items of one category (fruits, vegetables, animals, instruments) are listed.",
        instruction="Count the items asked about. Answer with a number only.",
        metric="exact_match",
        held_out=False,
        source="BBH-style lists of 1-6 item kinds with quantities one to three written as words, drawn from "
        "lexicons of fruits, vegetables, animals, instruments and household objects; 8 templates.",
        generate=gen_object_counting,
    ),
    TaskSpec(
        name="word_sorting",
        category="reasoning",
        description="Sort three to five English words alphabetically.",
        instruction="Sort the words alphabetically. Answer with the sorted words separated by single spaces.",
        metric="exact_match",
        held_out=False,
        source="3-5 distinct words sampled from a 230-word lexicon; target = sorted words; 6 templates.",
        generate=gen_word_sorting,
    ),
    TaskSpec(
        name="multistep_arithmetic",
        category="reasoning",
        description="Compute a parenthesised arithmetic expression with two or three operations on one-digit integers.",
        instruction="Compute the value of the arithmetic expression. Answer with the integer only.",
        metric="exact_match",
        held_out=False,
        source="Random expression trees of 2-3 operators (+, -, *) over integers -9..9, results within "
        "[-99, 99]; target = Python eval; 6 templates.",
        generate=gen_multistep_arithmetic,
    ),
    TaskSpec(
        name="date_understanding",
        category="reasoning",
        description="Shift a calendar date by a few days or weeks and give the resulting date.",
        instruction="Answer with the date in YYYY-MM-DD format only.",
        metric="exact_match",
        held_out=False,
        source="Random dates 2000-2029 (biased towards month ends) in four written formats, shifted by 1-10 "
        "days or 1-2 weeks forward or back; target computed with datetime.",
        generate=gen_date_understanding,
    ),
    TaskSpec(
        name="logical_deduction",
        category="reasoning",
        description="Deduce the order of three objects from clues and name the one in a given position.",
        instruction="Use the clues to work out the order. Answer with the name of the object or person only.",
        metric="exact_match",
        held_out=False,
        source="Five scenes (books on a shelf, birds on a branch, a race, heights, fruit prices); a hidden "
        "random order and clues added until exactly one order fits (checked by brute force).",
        generate=gen_logical_deduction,
    ),
    TaskSpec(
        name="tracking_shuffled_objects",
        category="reasoning",
        description="Track which object each of three people holds after a sequence of pairwise swaps.",
        instruction="Follow the swaps. Answer with the final object or partner only.",
        metric="exact_match",
        held_out=True,
        source="BBH-style: three people, three items (balls, books, presents, dance partners), 2-4 random swaps; "
        "target = the asked person's item after simulating the swaps.",
        generate=gen_tracking_shuffled_objects,
    ),
]
