"""Generators of data-to-text tasks: restaurant records, biography tables, concepts, weather records, match triples."""

from __future__ import annotations

import json
import random

from .common import FIRST_NAMES, LAST_NAMES, MONTHS, Example, TaskSpec, a_or_an, join_and, load_json, pick

# The vocabularies live in data/struct2text.json.
_DATA = load_json("struct2text.json")

# --- e2e_restaurant --------------------------------------------------------------------------------

E2E_NAMES = _DATA["e2e_names"]
E2E_LANDMARKS = _DATA["e2e_landmarks"]
E2E_FOODS = ["French", "Italian", "Chinese", "Indian", "Japanese", "English", "fast food", "Thai", "Mexican"]
E2E_EAT_TYPES = ["restaurant", "pub", "coffee shop"]
E2E_PRICES = {  # value -> (adjective before the noun, or None; phrase after "with")
    "cheap": ("cheap", None),
    "moderate": ("moderately priced", None),
    "high": ("expensive", None),
    "less than £20": (None, "meals under £20"),
    "£20-25": (None, "meals costing £20-25"),
    "more than £30": (None, "meals over £30"),
}
E2E_RATINGS = {
    "low": "a low customer rating",
    "average": "an average customer rating",
    "high": "a high customer rating",
    "1 out of 5": "a customer rating of 1 out of 5",
    "3 out of 5": "a customer rating of 3 out of 5",
    "5 out of 5": "a customer rating of 5 out of 5",
}
E2E_AREAS = {"city centre": "in the city centre", "riverside": "by the riverside"}


def realise_e2e(mr: dict[str, str]) -> str:
    """One fixed realisation per meaning representation, so the model learns a mapping, not a coin toss."""
    adjectives, with_parts = [], []
    if "priceRange" in mr:
        adj, post = E2E_PRICES[mr["priceRange"]]
        (adjectives.append(adj) if adj else with_parts.append(post))
    if mr.get("familyFriendly") == "yes":
        adjectives.append("family-friendly")
    if "food" in mr:
        adjectives.append(mr["food"])
    head = " ".join([*adjectives, mr.get("eatType", "place")])
    text = f"{mr['name']} is {a_or_an(head)} {head}"
    if "area" in mr:
        text += f" {E2E_AREAS[mr['area']]}"
    if "near" in mr:
        text += f" near {mr['near']}"
    if "customer rating" in mr:
        with_parts.append(E2E_RATINGS[mr["customer rating"]])
    if with_parts:
        text += f", with {join_and(with_parts)}"
    if mr.get("familyFriendly") == "no":
        text += ", and it is not family-friendly"
    return text + "."


def gen_e2e_restaurant(rng: random.Random) -> Example:
    choices = {
        "eatType": E2E_EAT_TYPES,
        "food": E2E_FOODS,
        "priceRange": list(E2E_PRICES),
        "customer rating": list(E2E_RATINGS),
        "area": list(E2E_AREAS),
        "familyFriendly": ["yes", "no"],
        "near": E2E_LANDMARKS,
    }
    keys = rng.sample(list(choices), rng.randint(2, len(choices)))
    mr = {"name": pick(rng, E2E_NAMES)} | {k: pick(rng, choices[k]) for k in keys}
    order = list(mr)
    if rng.random() < 0.5:  # E2E puts name first; sometimes shuffle all fields so order is not a cue
        rng.shuffle(order)
    text = ", ".join(f"{k}[{mr[k]}]" for k in order)
    return text, realise_e2e(mr)


# --- table_to_bio ----------------------------------------------------------------------------------

BIO_PLACES = _DATA["bio_places"]  # (city, country, demonym)
BIO_OCCUPATIONS = _DATA["bio_occupations"]  # occupation -> things such a person is known for


def _random_date(rng: random.Random, year_low: int, year_high: int) -> tuple[str, int]:
    year = rng.randint(year_low, year_high)
    return f"{rng.randint(1, 28)} {pick(rng, MONTHS)} {year}", year


def gen_table_to_bio(rng: random.Random) -> Example:
    name = f"{pick(rng, FIRST_NAMES)} {pick(rng, LAST_NAMES)}"
    city, country, demonym = pick(rng, BIO_PLACES)
    occupation = pick(rng, list(BIO_OCCUPATIONS))
    born, birth_year = _random_date(rng, 1890, 1995)
    died = None
    if birth_year < 1960 and rng.random() < 0.5:
        died, _ = _random_date(rng, birth_year + 40, min(birth_year + 95, 2023))
    known = pick(rng, BIO_OCCUPATIONS[occupation]) if rng.random() < 0.7 else None
    rows = [("name", name), ("born", born), ("birthplace", f"{city}, {country}"), ("occupation", occupation)]
    if died:
        rows.append(("died", died))
    if known:
        rows.append(("known for", known))
    head, rest = rows[0], rows[1:]
    rng.shuffle(rest)
    rows = [head, *rest]
    style = rng.randrange(3)
    if style == 0:
        table = " | ".join(f"{k}: {v}" for k, v in rows)
    elif style == 1:
        table = "\n".join(f"{k}: {v}" for k, v in rows)
    else:
        table = "| " + " | ".join(k for k, _ in rows) + " |\n| " + " | ".join(v for _, v in rows) + " |"
    life = f"{born} - {died}" if died else f"born {born}"
    verb = "was" if died else "is"
    target = f"{name} ({life}) {verb} {a_or_an(demonym)} {demonym} {occupation} from {city}"
    if known:
        target += f", known for {known}"
    return table, target + "."


# --- concepts_to_sentence --------------------------------------------------------------------------

# (verb lemma, third person form, objects, agents, places with their preposition)
_CONCEPT_FRAMES = _DATA["concept_frames"]
_AGENT_ADJECTIVES = ["young", "old", "little", "tall", "happy", "tired", "busy"]


def gen_concepts_to_sentence(rng: random.Random) -> Example:
    verb, verb3, objects, agents, places = pick(rng, _CONCEPT_FRAMES)
    obj, agent = pick(rng, objects), pick(rng, agents)
    place = pick(rng, places) if rng.random() < 0.75 else None
    adjective = pick(rng, _AGENT_ADJECTIVES) if rng.random() < 0.3 else None
    agent_phrase = f"{adjective} {agent}" if adjective else agent
    sentence = f"The {agent_phrase} {verb3} the {obj}" + (f" {place}" if place else "") + "."
    concepts = [agent, verb, obj] + ([place.split()[-1]] if place else []) + ([adjective] if adjective else [])
    rng.shuffle(concepts)
    template = pick(
        rng,
        (
            "Concepts: {c}",
            "Write a sentence using these words: {c}",
            "Make a sentence with: {c}",
            "Keywords: {c}\nSentence:",
            "Use all of these concepts in one sentence: {c}",
            "Words: {c}",
        ),
    )
    return template.format(c=", ".join(concepts)), sentence


# --- weather_report --------------------------------------------------------------------------------

_WEATHER_CITIES = _DATA["weather_cities"]
_WEATHER_DAYS = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "tomorrow",
    "the weekend",
]
_WEATHER_CONDITIONS = _DATA["weather_conditions"]  # condition -> plausible (low, high) Celsius range
_WINDS = ["light", "moderate", "strong", "gale-force"]


def gen_weather_report(rng: random.Random) -> Example:
    condition = pick(rng, list(_WEATHER_CONDITIONS))
    low_bound, high_bound = _WEATHER_CONDITIONS[condition]
    high = rng.randint(low_bound, high_bound)
    low = high - rng.randint(3, 12)
    record: dict[str, object] = {
        "city": pick(rng, _WEATHER_CITIES),
        "day": pick(rng, _WEATHER_DAYS),
        "condition": condition,
    }
    temperature_fields = rng.randrange(3)  # none, high only, high and low
    if temperature_fields >= 1:
        record["high_c"] = high
    if temperature_fields == 2:
        record["low_c"] = low
    if rng.random() < 0.5 and "wind" not in condition:
        record["wind"] = pick(rng, _WINDS)
    if rng.random() < 0.4:
        record["rain_chance"] = f"{rng.randrange(10, 100, 10)}%"
    keys = list(record)
    tail = keys[2:]
    rng.shuffle(tail)
    record = {k: record[k] for k in keys[:2] + tail}

    day = record["day"]
    when = {"tomorrow": "Tomorrow", "the weekend": "At the weekend"}.get(day, f"On {day}")
    text = f"{when}, {record['city']} will have {condition}"
    if "high_c" in record:
        text += f" with a high of {record['high_c']}°C"
        if "low_c" in record:
            text += f" and a low of {record['low_c']}°C"
    extras = []
    if "wind" in record:
        extras.append(f"{record['wind']} winds")
    if "rain_chance" in record:
        extras.append(f"a {record['rain_chance']} chance of rain")
    if extras:
        text += f", along with {join_and(extras)}"
    return json.dumps(record, ensure_ascii=False), text + "."


# --- match_report (held out) -----------------------------------------------------------------------

_TEAMS = _DATA["teams"]
_TEAM_TOWNS = ["Riverside", "Northfield", "Oakham", "Westport", "Lakeview", "Hillcrest", "Easton", "Millbrook"]
_VENUES = ["Oak Park", "Riverside Stadium", "the Old Ground", "Victoria Park", "the City Arena", "Harbour Field"]
_MATCH_DAYS = ["Saturday", "Sunday", "Friday night", "Wednesday"]


def gen_match_report(rng: random.Random) -> Example:
    home, away = (f"{pick(rng, _TEAM_TOWNS)} {t}" for t in rng.sample(_TEAMS, 2))
    home_goals, away_goals = rng.randint(0, 5), rng.randint(0, 5)
    triples = [
        ("match", "home team", home),
        ("match", "away team", away),
        ("match", "final score", f"{home_goals}-{away_goals}"),
    ]
    venue = pick(rng, _VENUES) if rng.random() < 0.7 else None
    day = pick(rng, _MATCH_DAYS) if rng.random() < 0.6 else None
    scorer = f"{pick(rng, FIRST_NAMES)} {pick(rng, LAST_NAMES)}" if rng.random() < 0.4 else None
    if venue:
        triples.append(("match", "venue", venue))
    if day:
        triples.append(("match", "day", day))
    if scorer:
        triples.append(("match", "player of the match", scorer))
    rng.shuffle(triples)
    text = " ; ".join(" | ".join(t) for t in triples)
    if home_goals == away_goals:
        sentence = f"The {home} and the {away} drew {home_goals}-{away_goals}"
    elif home_goals > away_goals:
        sentence = f"The {home} beat the {away} {home_goals}-{away_goals}"
    else:
        sentence = f"The {away} beat the {home} {away_goals}-{home_goals}"
    if venue:
        sentence += f" at {venue}"
    if day:
        sentence += f" on {day}"
    if scorer:
        sentence += f", with {scorer} named player of the match"
    return text, sentence + "."


SPECS = [
    TaskSpec(
        name="e2e_restaurant",
        category="struct2text",
        description="Turn an E2E-style restaurant meaning representation into one fluent sentence.",
        instruction="Write one sentence that describes the restaurant using all the given attributes.",
        metric="rouge_l",
        held_out=False,
        source="E2E NLG attribute vocabulary (name, eatType, food, priceRange, customer rating, area, "
        "familyFriendly, near) with 2-7 random attributes per record; target from one fixed realiser.",
        generate=gen_e2e_restaurant,
    ),
    TaskSpec(
        name="table_to_bio",
        category="struct2text",
        description="Write a one-sentence biography from a small table about a (fictional) person.",
        instruction="Write a one-sentence biography of the person described in the table.",
        metric="rouge_l",
        held_out=False,
        source="Fictional people: random names, birthplaces from 35 cities, 20 occupations with typical "
        "achievements, birth/death dates; three table layouts; target from a fixed template.",
        generate=gen_table_to_bio,
    ),
    TaskSpec(
        name="concepts_to_sentence",
        category="struct2text",
        description="Write one everyday sentence that uses all the given concepts (CommonGen-style).",
        instruction="Write one short sentence that uses all of the given words.",
        metric="rouge_l",
        held_out=False,
        source="20 verb frames with compatible agents, objects and places plus optional agent adjectives; the "
        "concept words are shuffled; target = 'The <agent> <verb>s the <object> <place>.'",
        generate=gen_concepts_to_sentence,
    ),
    TaskSpec(
        name="weather_report",
        category="struct2text",
        description="Turn a JSON weather record into a one-sentence forecast.",
        instruction="Write a one-sentence weather forecast from the JSON record.",
        metric="rouge_l",
        held_out=False,
        source="JSON records with city, day, condition and optional high/low temperatures, wind and rain "
        "chance (plausible ranges per condition); target from a fixed template.",
        generate=gen_weather_report,
    ),
    TaskSpec(
        name="match_report",
        category="struct2text",
        description="Turn subject | relation | object triples about a football match into a one-sentence report.",
        instruction="Write one sentence reporting the match described by the triples.",
        metric="rouge_l",
        held_out=True,
        source="WebNLG-style triples (home team, away team, final score, optional venue, day, player of the "
        "match) for fictional teams; the target names the winner first or reports a draw.",
        generate=gen_match_report,
    ),
]
