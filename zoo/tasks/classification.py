"""Generators of text classification tasks: movie and product sentiment, news topics, spam, assistant intents."""

from __future__ import annotations

import random

from .common import FIRST_NAMES, Example, TaskSpec, capitalize_first, load_json, pick

# The templates and their slot fillers live in data/classification.json.
_DATA = load_json("classification.json")

# --- movie_sentiment -------------------------------------------------------------------------------

_MOVIE_TITLES = _DATA["movie_titles"]
_MOVIE_GENRES = _DATA["movie_genres"]
_MOVIE_ASPECTS = _DATA["movie_aspects"]
_MOVIE_GOOD = _DATA["movie_good"]
_MOVIE_BAD = _DATA["movie_bad"]
_MOVIE_VERDICTS = _DATA["movie_verdicts"]
_MOVIE_OPENERS = _DATA["movie_openers"]


def _review(
    rng: random.Random,
    label: str,
    aspects: dict[str, tuple[list[str], list[str]]],
    verdicts: dict[str, list[str]],
    opener: str,
) -> str:
    """Aspect sentences mostly agree with the label; a contrast clause is always subordinate to an agreeing one.

    aspects maps an aspect to its (positive, negative) predicates.
    """
    agree, disagree = (0, 1) if label == "positive" else (1, 0)
    chosen = rng.sample(list(aspects), rng.randint(2, 4))
    sentences = [opener] if opener else []
    n_main = len(chosen) - 1 if rng.random() < 0.4 else len(chosen)
    for aspect in chosen[:n_main]:
        sentences.append(capitalize_first(f"{aspect} {pick(rng, aspects[aspect][agree])}."))
    if n_main < len(chosen):  # one contrasting aspect, attached to the last agreeing sentence
        contrast = f"{chosen[-1]} {pick(rng, aspects[chosen[-1]][disagree])}"
        last = sentences.pop()[:-1]
        last = last[0].lower() + last[1:]
        sentences.append(pick(rng, (f"Although {contrast}, {last}.", capitalize_first(f"{contrast}, but {last}."))))
    if rng.random() < 0.6:
        sentences.append(pick(rng, verdicts[label]))
    return " ".join(sentences)


def gen_movie_sentiment(rng: random.Random) -> Example:
    label = pick(rng, ("positive", "negative"))
    opener = pick(rng, _MOVIE_OPENERS).format(t=pick(rng, _MOVIE_TITLES), g=pick(rng, _MOVIE_GENRES))
    aspects = dict.fromkeys(_MOVIE_ASPECTS, (_MOVIE_GOOD, _MOVIE_BAD))
    text = _review(rng, label, aspects, _MOVIE_VERDICTS, opener)
    return pick(rng, ("{r}", "Review: {r}", "Movie review: {r}", '"{r}"')).format(r=text), label


# --- product_sentiment (held out) ------------------------------------------------------------------

_PRODUCTS = _DATA["products"]
_PRODUCT_ASPECTS = _DATA["product_aspects"]  # aspect -> (positive predicates, negative predicates)
_PRODUCT_VERDICTS = _DATA["product_verdicts"]


def gen_product_sentiment(rng: random.Random) -> Example:
    label = pick(rng, ("positive", "negative"))
    opener = pick(
        rng,
        (
            "I bought {p} last month.",
            "Ordered {p} for my kitchen.",
            "Got {p} as a gift.",
            "I have used {p} every day for a month.",
            "",
        ),
    ).format(p=pick(rng, _PRODUCTS))
    text = _review(rng, label, _PRODUCT_ASPECTS, _PRODUCT_VERDICTS, opener)
    return pick(rng, ("{r}", "Product review: {r}", "Customer review: {r}")).format(r=text), label


# --- news_topic ------------------------------------------------------------------------------------

_CLUBS = _DATA["clubs"]
_COMPANIES = _DATA["companies"]
_COUNTRIES = ["Spain", "Canada", "Japan", "Brazil", "Kenya", "Norway", "India", "Mexico", "Poland", "Chile"]
_PEOPLE = _DATA["people"]
_NEWS = _DATA["news"]
_NEWS_SLOTS = _DATA["news_slots"]
_NEWS_TEMPLATES = ("{h}", "Headline: {h}", "{h}.", "News: {h}", "Breaking: {h}", 'Today\'s headline: "{h}"')


def gen_news_topic(rng: random.Random) -> Example:
    topic = pick(rng, list(_NEWS))
    club, club2 = rng.sample(_CLUBS, 2)
    company, company2 = rng.sample(_COMPANIES, 2)
    country, country2 = rng.sample(_COUNTRIES, 2)
    headline = pick(rng, _NEWS[topic]).format(
        club=club,
        club2=club2,
        company=company,
        company2=company2,
        country=country,
        country2=country2,
        person=pick(rng, _PEOPLE),
        n=rng.randint(1, 5),
        m=rng.randint(0, 1),
        n2=rng.randint(3, 9),
        y=rng.randint(5, 40),
        p=rng.randint(2, 15),
        k=rng.randrange(200, 5000, 100),
        b=rng.randint(2, 90),
        year=rng.randint(2025, 2027),
        title=pick(rng, _MOVIE_TITLES),
        **{slot: pick(rng, options) for slot, options in _NEWS_SLOTS.items()},
    )
    return pick(rng, _NEWS_TEMPLATES).format(h=headline), topic


# --- spam_detection --------------------------------------------------------------------------------

_HAM = _DATA["ham"]
_SPAM = _DATA["spam"]
_SPAM_DOMAINS = ("claim-now", "secure-verify", "prize4u", "refund-centre", "deliv-track")
_HAM_SLOTS = _DATA["ham_slots"]


def gen_spam_detection(rng: random.Random) -> Example:
    is_spam = rng.random() < 0.5
    slots = dict(
        name=pick(rng, FIRST_NAMES),
        time=f"{rng.randint(1, 12)}:{pick(rng, ('00', '15', '30', '45'))}",
        n=rng.randint(5, 40),
        room=rng.randint(100, 450),
        money=rng.randrange(100, 5000, 50),
        fee=f"{rng.randint(1, 4)}.{rng.randint(10, 99)}",
        phone=f"0{rng.randint(8000000000, 9099999999)}",
        code=rng.randint(60000, 89999),
        prize=pick(rng, ("iPhone", "holiday for two", "gift card", "laptop", "cruise", "tablet")),
        url=pick(rng, ("www.", "http://", "")) + pick(rng, _SPAM_DOMAINS) + pick(rng, (".com", ".net", ".xyz")),
        service=pick(rng, ("Netflix", "bank", "mailbox", "antivirus", "cloud storage")),
        item2=pick(rng, ("designer watches", "sunglasses", "perfume", "weight-loss pills")),
        **{k: pick(rng, v) for k, v in _HAM_SLOTS.items()},
    )
    text = pick(rng, _SPAM if is_spam else _HAM).format(**slots)
    if not is_spam:  # personal touches; they also keep ham as varied as spam, so dedupe keeps labels balanced
        text = pick(rng, ("", "", "Hi! ", "Hey, ", f"{slots['name']}: ", "Morning! ")) + text
        text += pick(rng, ("", "", " x", " :)", " Thanks!", f" - {slots['name']}", " Cheers"))
        if rng.random() < 0.2:
            text = text.lower()
    return pick(rng, ("{m}", "SMS: {m}", "Message: {m}", 'Text message: "{m}"')).format(
        m=text
    ), "spam" if is_spam else "ham"


# --- intent_detection ------------------------------------------------------------------------------

_INTENTS = _DATA["intents"]
_INTENT_SLOTS = _DATA["intent_slots"]


def gen_intent_detection(rng: random.Random) -> Example:
    intent = pick(rng, list(_INTENTS))
    slots = {k: pick(rng, v) for k, v in _INTENT_SLOTS.items()}
    slots |= dict(
        time=f"{rng.randint(5, 11)}{pick(rng, ('', ':30', ':15', ' am', ' pm'))}",
        n=rng.randint(2, 8),
        deg=rng.randint(17, 24),
        pct=rng.randrange(10, 90, 10),
    )
    utterance = pick(rng, _INTENTS[intent]).format(**slots)
    if not utterance.endswith("?"):
        utterance += pick(rng, ("", "", " please", ", thanks", " now"))
    if rng.random() < 0.3:
        prefix = pick(rng, ("Hey assistant, ", "Please ", "Okay, ", "Quick one: "))
        utterance = prefix + utterance[0].lower() + utterance[1:]
    return pick(rng, ("{u}", "User: {u}", "Utterance: {u}", 'Voice command: "{u}"')).format(u=utterance), intent


SPECS = [
    TaskSpec(
        name="movie_sentiment",
        category="classification",
        description="Classify the sentiment of a short movie review as positive or negative.",
        instruction="Is the sentiment of this movie review positive or negative? Answer with positive or negative "
        "only.",
        metric="exact_match",
        held_out=False,
        source="Reviews composed from phrase lexicons: optional opener, 2-4 aspect sentences (acting, plot, ...) "
        "agreeing with the label, sometimes one contrasting clause (although/but), optional verdict; "
        "labels balanced.",
        generate=gen_movie_sentiment,
    ),
    TaskSpec(
        name="news_topic",
        category="classification",
        description="Classify a news headline as sports, business, science, politics or entertainment.",
        instruction="What is the topic of this headline? Answer with one of: sports, business, science, politics, "
        "entertainment.",
        metric="exact_match",
        held_out=False,
        source="12 headline templates per topic with fictional clubs, companies and people; topics balanced; "
        "6 wrappers.",
        generate=gen_news_topic,
    ),
    TaskSpec(
        name="spam_detection",
        category="classification",
        description="Decide whether a text message is spam or a normal (ham) message.",
        instruction="Is this text message spam or ham? Answer with spam or ham only.",
        metric="exact_match",
        held_out=False,
        source="SMS-style messages: 21 personal-message templates and 12 spam templates (prizes, phishing links, "
        "fake refunds) with random names, times, amounts, phone numbers and URLs; labels balanced.",
        generate=gen_spam_detection,
    ),
    TaskSpec(
        name="intent_detection",
        category="classification",
        description="Classify a voice-assistant request into one of nine intents.",
        instruction="Classify the user's request. Answer with one of: set_alarm, weather, play_music, book_restaurant, "
        "set_reminder, get_directions, smart_home, shopping_list, check_balance.",
        metric="exact_match",
        held_out=False,
        source="5 utterance templates per intent with slot fillers (times, cities, artists, chores, ...), "
        "optional politeness prefixes; intents balanced.",
        generate=gen_intent_detection,
    ),
    TaskSpec(
        name="product_sentiment",
        category="classification",
        description="Classify the sentiment of a short product review as positive or negative.",
        instruction="Is the sentiment of this product review positive or negative? Answer with positive or negative "
        "only.",
        metric="exact_match",
        held_out=True,
        source="Product reviews built like movie_sentiment but from a separate lexicon of products and aspects "
        "(battery life, delivery, price, ...); labels balanced.",
        generate=gen_product_sentiment,
    ),
]
