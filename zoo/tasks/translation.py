"""Generators of translation tasks: grammar-built English sentences into French/German/Spanish/Italian, number words."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .common import Example, TaskSpec, a_or_an, capitalize_first, load_json, number_to_words, pick

# The lexicon lives in data/translation.json.
_LEXICON = load_json("translation.json")

LANG_NAMES = {"fr": "French", "de": "German", "es": "Spanish", "it": "Italian"}

# --- Lexicon ---------------------------------------------------------------------------------------
# Noun entries: en = (singular, plural); other languages = (singular, plural, gender) with gender m/f/n.

# Subject pronouns. "you" is always the informal singular; "they" the masculine/default plural.
PRONOUNS = {
    "I": dict(person=0, gender="m", plural=False, fr="je", de="ich", es="yo", it="io"),
    "you": dict(person=1, gender="m", plural=False, fr="tu", de="du", es="tú", it="tu"),
    "he": dict(person=2, gender="m", plural=False, fr="il", de="er", es="él", it="lui"),
    "she": dict(person=2, gender="f", plural=False, fr="elle", de="sie", es="ella", it="lei"),
    "we": dict(person=3, gender="m", plural=True, fr="nous", de="wir", es="nosotros", it="noi"),
    "they": dict(person=4, gender="m", plural=True, fr="ils", de="sie", es="ellos", it="loro"),
}
# Spanish and Italian usually drop these subject pronouns; their pronoun-less sentence is the canonical target.
DROPPED_PRONOUNS = {"I", "you", "we"}

PEOPLE = _LEXICON["people"]

# tags: which verbs take the noun; adj: which adjective class fits it; mass nouns only take "the" + singular.
# The tags are sets: a verb accepts a noun when they share one.
THINGS = {noun: entry | {"tags": frozenset(entry["tags"])} for noun, entry in _LEXICON["things"].items()}

# Verb entries: en = (base, third person singular); others = present forms for I, you, he/she, we, they.
# objects: the THINGS tags it accepts ("any": every noun; None: any noun not tagged "fixed").
VERBS = {
    verb: entry | ({"objects": frozenset(entry["objects"])} if isinstance(entry["objects"], list) else {})
    for verb, entry in _LEXICON["verbs"].items()
}

BE = dict(
    en=["am", "are", "is", "are", "are"],
    fr=["suis", "es", "est", "sommes", "sont"],
    de=["bin", "bist", "ist", "sind", "sind"],
    it=["sono", "sei", "è", "siamo", "sono"],
    ser=["soy", "eres", "es", "somos", "son"],
    estar=["estoy", "estás", "está", "estamos", "están"],
)

# Adjective entries: fr/es/it = (masc sg, fem sg, masc pl, fem pl); de = (predicative, attributive stem).
# fr_pre: placed before the noun in French; fr_mv: French masculine singular form before a vowel.
# es_cop: Spanish copula for the predicative use (ser for lasting qualities, estar for states).
ADJECTIVES = _LEXICON["adjectives"]

# Location phrases are translated as fixed units (this avoids case and contraction rules for prepositions).
LOCATIONS = _LEXICON["locations"]


# --- Sentence frames -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NounPhrase:
    lexeme: dict  # a PEOPLE or THINGS entry
    plural: bool
    definite: bool
    adjective: str | None = None  # ADJECTIVES key (attributive)


@dataclass(frozen=True)
class Frame:
    """Language-neutral content of one sentence; each render_* function spells it out in one language."""

    kind: str  # "svo", "be_adj" or "be_loc"
    pronoun: str | None  # PRONOUNS key, or None when the subject is a noun phrase
    subject: NounPhrase | None
    verb: str | None = None
    obj: NounPhrase | None = None
    adjective: str | None = None  # predicative adjective (be_adj)
    location: str | None = None
    negated: bool = False
    contracted: bool = False  # English only: "doesn't" instead of "does not"


def _person(frame: Frame) -> int:
    if frame.pronoun:
        return PRONOUNS[frame.pronoun]["person"]
    return 4 if frame.subject.plural else 2


def _subject_gender_number(frame: Frame, lang: str) -> tuple[str, bool]:
    if frame.pronoun:
        p = PRONOUNS[frame.pronoun]
        return p["gender"], p["plural"]
    return frame.subject.lexeme[lang][2], frame.subject.plural


def _agree(forms: tuple[str, str, str, str], gender: str, plural: bool) -> str:
    return forms[(2 if plural else 0) + (1 if gender == "f" else 0)]


def _objects_for(verb: str) -> list[str]:
    accepted = VERBS[verb]["objects"]
    if accepted == "any":
        return list(THINGS)
    if accepted is None:
        return [k for k, v in THINGS.items() if "fixed" not in v["tags"]]
    return [k for k, v in THINGS.items() if v["tags"] & accepted]


def _random_thing_np(rng: random.Random, key: str, allow_adjective: bool = True) -> NounPhrase:
    entry = THINGS[key]
    if entry.get("mass"):
        plural, definite = False, True
    else:
        plural = rng.random() < 0.25
        definite = plural or rng.random() < 0.6
    adjective = None
    if allow_adjective and rng.random() < 0.35:
        adjective = pick(rng, [a for a, v in ADJECTIVES.items() if entry["adj"] in v["cls"].split()])
    return NounPhrase(entry, plural, definite, adjective)


def random_frame(rng: random.Random) -> Frame:
    roll = rng.random()
    kind = "svo" if roll < 0.6 else ("be_adj" if roll < 0.85 else "be_loc")
    negated = rng.random() < 0.25
    contracted = negated and rng.random() < 0.5
    thing_subject = kind == "be_adj" and rng.random() < 0.35
    pronoun, subject = None, None
    if thing_subject:
        subject = _random_thing_np(rng, pick(rng, list(THINGS)), allow_adjective=False)
        subject = NounPhrase(subject.lexeme, subject.plural, True)
    elif rng.random() < 0.4:
        pronoun = pick(rng, list(PRONOUNS))
    else:
        plural = rng.random() < 0.35
        subject = NounPhrase(PEOPLE[pick(rng, list(PEOPLE))], plural, plural or rng.random() < 0.8)
    if kind == "svo":
        verb = pick(rng, list(VERBS))
        obj = _random_thing_np(rng, pick(rng, _objects_for(verb)))
        location = None if negated or rng.random() < 0.75 else pick(rng, list(LOCATIONS))
        return Frame(
            kind, pronoun, subject, verb=verb, obj=obj, location=location, negated=negated, contracted=contracted
        )
    if kind == "be_adj":
        cls = subject.lexeme["adj"] if thing_subject else "person"
        adjective = pick(rng, [a for a, v in ADJECTIVES.items() if cls in v["cls"].split()])
        return Frame(kind, pronoun, subject, adjective=adjective, negated=negated, contracted=contracted)
    return Frame(kind, pronoun, subject, location=pick(rng, list(LOCATIONS)), negated=negated, contracted=contracted)


def _finish(words: list[str]) -> str:
    text = " ".join(w for w in words if w).replace("' ", "'")
    return capitalize_first(text) + "."


# --- English ---------------------------------------------------------------------------------------


def _en_np(np: NounPhrase) -> str:
    head = np.lexeme["en"][1 if np.plural else 0]
    if np.adjective:
        head = f"{np.adjective} {head}"
    return f"the {head}" if np.definite else f"{a_or_an(head)} {head}"


def render_en(frame: Frame) -> str:
    subject = frame.pronoun or _en_np(frame.subject)
    person = _person(frame)
    if frame.kind == "svo":
        base, third = VERBS[frame.verb]["en"]
        if frame.negated:
            aux = "does" if person == 2 else "do"
            verb = f"{aux}n't {base}" if frame.contracted else f"{aux} not {base}"
        else:
            verb = third if person == 2 else base
        return _finish([subject, verb, _en_np(frame.obj), frame.location])
    be = BE["en"][person]
    if frame.negated:
        if frame.contracted and be != "am":
            be = f"{be}n't"
        elif frame.contracted:
            subject, be = "I'm", "not"
        else:
            be = f"{be} not"
    return _finish([subject, be, frame.adjective if frame.kind == "be_adj" else frame.location])


# --- French ----------------------------------------------------------------------------------------

_FR_VOWELS = tuple("aeiouéèêâîôûh")  # every h-word in the lexicon ("homme") has a mute h


def _fr_elide(word: str, following: str) -> str:
    """le/la/je/ne/de before a vowel become l'/j'/n'/d'."""
    return word[:-1] + "'" if following.lower().startswith(_FR_VOWELS) else word


def _fr_np(np: NounPhrase, negated_indefinite: bool = False) -> str:
    sg, pl, gender = np.lexeme["fr"]
    noun = pl if np.plural else sg
    head = noun
    if np.adjective:
        adj = ADJECTIVES[np.adjective]
        form = _agree(adj["fr"], gender, np.plural)
        if adj.get("fr_pre"):
            if gender == "m" and not np.plural and noun.startswith(_FR_VOWELS) and adj.get("fr_mv"):
                form = adj["fr_mv"]
            head = f"{form} {noun}"
        else:
            head = f"{noun} {form}"
    if negated_indefinite:  # "pas de pomme": the article becomes de after a negation
        return f"{_fr_elide('de', head)} {head}"
    if not np.definite:
        return f"{'une' if gender == 'f' else 'un'} {head}"
    if np.plural:
        return f"les {head}"
    return f"{_fr_elide('la' if gender == 'f' else 'le', head)} {head}"


def render_fr(frame: Frame) -> str:
    subject = PRONOUNS[frame.pronoun]["fr"] if frame.pronoun else _fr_np(frame.subject)
    person = _person(frame)
    if frame.kind == "svo":
        verb = VERBS[frame.verb]["fr"][person]
        obj = _fr_np(frame.obj, negated_indefinite=frame.negated and not frame.obj.definite)
        rest = [obj, LOCATIONS[frame.location]["fr"] if frame.location else None]
    else:
        verb = BE["fr"][person]
        if frame.kind == "be_adj":
            gender, plural = _subject_gender_number(frame, "fr")
            rest = [_agree(ADJECTIVES[frame.adjective]["fr"], gender, plural)]
        else:
            rest = [LOCATIONS[frame.location]["fr"]]
    verb_group = [_fr_elide("ne", verb), verb, "pas"] if frame.negated else [verb]
    if subject == "je":
        subject = _fr_elide("je", verb_group[0])
    return _finish([subject, *verb_group, *rest])


# --- German ----------------------------------------------------------------------------------------

_DE_DEFINITE = {
    ("nom", "m"): "der",
    ("nom", "f"): "die",
    ("nom", "n"): "das",
    ("acc", "m"): "den",
    ("acc", "f"): "die",
    ("acc", "n"): "das",
}
_DE_INDEFINITE = {
    ("nom", "m"): "ein",
    ("nom", "f"): "eine",
    ("nom", "n"): "ein",
    ("acc", "m"): "einen",
    ("acc", "f"): "eine",
    ("acc", "n"): "ein",
}
# Adjective endings after der/die/das (weak) and after ein/kein (mixed), singular.
_DE_WEAK = {
    ("nom", "m"): "e",
    ("nom", "f"): "e",
    ("nom", "n"): "e",
    ("acc", "m"): "en",
    ("acc", "f"): "e",
    ("acc", "n"): "e",
}
_DE_MIXED = {
    ("nom", "m"): "er",
    ("nom", "f"): "e",
    ("nom", "n"): "es",
    ("acc", "m"): "en",
    ("acc", "f"): "e",
    ("acc", "n"): "es",
}


def _de_np(np: NounPhrase, case: str, negated_indefinite: bool = False) -> str:
    sg, pl, gender = np.lexeme["de"]
    if np.plural:
        article, ending = "die", "en"  # only definite plurals are generated
        noun = pl
    else:
        noun = sg
        if np.definite:
            article, ending = _DE_DEFINITE[case, gender], _DE_WEAK[case, gender]
        else:
            article, ending = _DE_INDEFINITE[case, gender], _DE_MIXED[case, gender]
            if negated_indefinite:
                article = "k" + article
    adjective = ADJECTIVES[np.adjective]["de"][1] + ending if np.adjective else None
    return " ".join(w for w in (article, adjective, noun) if w)


def render_de(frame: Frame) -> str:
    subject = PRONOUNS[frame.pronoun]["de"] if frame.pronoun else _de_np(frame.subject, "nom")
    person = _person(frame)
    if frame.kind == "svo":
        verb = VERBS[frame.verb]["de"][person]
        if frame.negated and not frame.obj.definite:
            rest = [_de_np(frame.obj, "acc", negated_indefinite=True)]  # "keinen Apfel"
        else:
            rest = [_de_np(frame.obj, "acc"), "nicht" if frame.negated else None]
        rest.append(LOCATIONS[frame.location]["de"] if frame.location else None)
        return _finish([subject, verb, *rest])
    complement = ADJECTIVES[frame.adjective]["de"][0] if frame.kind == "be_adj" else LOCATIONS[frame.location]["de"]
    return _finish([subject, BE["de"][person], "nicht" if frame.negated else None, complement])


# --- Spanish and Italian ---------------------------------------------------------------------------


def _es_np(np: NounPhrase) -> str:
    sg, pl, gender = np.lexeme["es"]
    head = pl if np.plural else sg
    if np.adjective:
        head = f"{head} {_agree(ADJECTIVES[np.adjective]['es'], gender, np.plural)}"
    if np.definite:
        article = {("m", False): "el", ("f", False): "la", ("m", True): "los", ("f", True): "las"}[gender, np.plural]
    else:
        article = "una" if gender == "f" else "un"
    return f"{article} {head}"


_IT_VOWELS = tuple("aeiouàèéìòù")


def _it_needs_lo(word: str) -> bool:
    """Italian lo/gli/uno before s + consonant, z, gn, ps."""
    w = word.lower()
    return (w.startswith("s") and len(w) > 1 and w[1] not in _IT_VOWELS) or w.startswith(("z", "gn", "ps", "x", "y"))


def _it_np(np: NounPhrase) -> str:
    sg, pl, gender = np.lexeme["it"]
    noun = pl if np.plural else sg
    head = noun
    if np.adjective:
        head = f"{noun} {_agree(ADJECTIVES[np.adjective]['it'], gender, np.plural)}"
    vowel, lo = noun.startswith(_IT_VOWELS), _it_needs_lo(noun)
    if np.definite:
        if gender == "f":
            article = "le " if np.plural else ("l'" if vowel else "la ")
        elif np.plural:
            article = "gli " if vowel or lo else "i "
        else:
            article = "l'" if vowel else ("lo " if lo else "il ")
    elif gender == "f":
        article = "un'" if vowel else "una "
    else:
        article = "uno " if lo else "un "
    return article + head


def _render_romance(frame: Frame, lang: str, drop_pronoun: bool) -> str:
    np_fn = _es_np if lang == "es" else _it_np
    person = _person(frame)
    subject = None
    if frame.pronoun and not drop_pronoun:
        subject = PRONOUNS[frame.pronoun][lang]
    elif not frame.pronoun:
        subject = np_fn(frame.subject)
    if frame.kind == "svo":
        verb = VERBS[frame.verb][lang][person]
        rest = [np_fn(frame.obj), LOCATIONS[frame.location][lang] if frame.location else None]
    elif frame.kind == "be_adj":
        adj = ADJECTIVES[frame.adjective]
        verb = BE[adj["es_cop"]][person] if lang == "es" else BE["it"][person]
        gender, plural = _subject_gender_number(frame, lang)
        rest = [_agree(adj[lang], gender, plural)]
    else:
        verb = BE["estar"][person] if lang == "es" else BE["it"][person]
        rest = [LOCATIONS[frame.location][lang]]
    negation = ("no" if lang == "es" else "non") if frame.negated else None
    return _finish([subject, negation, verb, *rest])


def render_romance(frame: Frame, lang: str) -> list[str]:
    """Canonical target first; the variant with or without the subject pronoun is also accepted."""
    if frame.pronoun in DROPPED_PRONOUNS:
        return [_render_romance(frame, lang, True), _render_romance(frame, lang, False)]
    return [_render_romance(frame, lang, False)]


# --- Tasks -----------------------------------------------------------------------------------------

_TRANSLATION_TEMPLATES = (
    "Translate to {L}: {s}",
    "Translate the following sentence into {L}: {s}",
    "English: {s}\n{L}:",
    'How do you say "{s}" in {L}?',
    "{s}\nTranslate this into {L}.",
    "Give the {L} translation of: {s}",
    'What is "{s}" in {L}?',
    "Render this sentence in {L}: {s}",
    "Translate from English to {L}: {s}",
)


def _make_translation_generator(lang: str):
    def generate(rng: random.Random) -> Example:
        frame = random_frame(rng)
        source = render_en(frame)
        if lang == "fr":
            target: list[str] | str = render_fr(frame)
        elif lang == "de":
            target = render_de(frame)
        else:
            target = render_romance(frame, lang)
        return pick(rng, _TRANSLATION_TEMPLATES).format(L=LANG_NAMES[lang], s=source), target

    generate.__name__ = f"gen_en_{lang}"
    return generate


def gen_number_to_words(rng: random.Random) -> Example:
    roll = rng.random()
    n = rng.randint(0, 99) if roll < 0.2 else (rng.randint(100, 999) if roll < 0.5 else rng.randint(1000, 9999))
    shown = f"{n:,}" if n >= 1000 and rng.random() < 0.3 else str(n)
    template = pick(
        rng,
        (
            "Write {n} in words.",
            "Spell out the number {n}.",
            "{n} in words:",
            "How is {n} written in English words?",
            "Convert {n} to words.",
            "Write the number {n} out in English.",
            "Number: {n}\nIn words:",
            "Express {n} in words.",
        ),
    )
    words = number_to_words(n)
    alternatives = [words] + ([number_to_words(n, use_and=True)] if number_to_words(n, use_and=True) != words else [])
    return template.format(n=shown), alternatives


def _translation_source(lang: str) -> str:
    return (
        f"English sentences from a hand-written grammar (subject pronoun or noun phrase + present-tense verb "
        f"+ object, be + adjective, be + location; optional negation, adjectives, plurals, locations) and a "
        f"~110-word lexicon, rendered into {LANG_NAMES[lang]} with gender/number agreement and article rules "
        f"written in zoo/tasks/translation.py; 9 prompt templates."
    )


SPECS = [
    TaskSpec(
        name=f"en_{lang}",
        category="translation",
        description=f"Translate a short English sentence into {LANG_NAMES[lang]}.",
        instruction=f"Translate the English sentence into {LANG_NAMES[lang]}. Answer with the translation only.",
        metric="bleu",
        held_out=lang == "it",
        source=_translation_source(lang)
        + (
            " Spanish/Italian targets drop the subject pronouns I/you/we; the variant with the pronoun is listed "
            "as a second acceptable answer."
            if lang in ("es", "it")
            else ""
        ),
        generate=_make_translation_generator(lang),
    )
    for lang in ("fr", "de", "es", "it")
] + [
    TaskSpec(
        name="number_to_words",
        category="translation",
        description="Write an integer between 0 and 9999 in English words.",
        instruction="Write the number in English words, in lower case, without 'and'. Answer with the words only.",
        metric="exact_match",
        held_out=False,
        source="Integers 0-9999 (20% below 100, 30% three-digit, 50% four-digit), sometimes with a thousands "
        "comma; target spelled by a rule-based converter (the British form with 'and' is also accepted).",
        generate=gen_number_to_words,
    ),
]
