"""Generators of text classification tasks: movie and product sentiment, news topics, spam, assistant intents."""

from __future__ import annotations

import random

from .common import FIRST_NAMES, Example, TaskSpec, capitalize_first, pick

# --- movie_sentiment -------------------------------------------------------------------------------

_MOVIE_TITLES = [
    "The Silent Harbor",
    "Night Train",
    "Lost in Verona",
    "Crimson Sky",
    "The Last Orchard",
    "Paper Kings",
    "Ghosts of June",
    "Blue Horizon",
    "Iron Garden",
    "The Quiet Storm",
    "Midnight Run",
    "A Winter Tale",
    "Dust and Gold",
    "The Glass Road",
    "Northern Lights",
    "Echoes",
]
_MOVIE_GENRES = [
    "thriller",
    "comedy",
    "drama",
    "sequel",
    "horror film",
    "musical",
    "western",
    "romance",
    "documentary",
    "animated film",
    "war film",
    "sci-fi film",
    "remake",
    "biopic",
]
_MOVIE_ASPECTS = [
    "the acting",
    "the plot",
    "the script",
    "the direction",
    "the soundtrack",
    "the cinematography",
    "the pacing",
    "the dialogue",
    "the ending",
    "the camera work",
    "the lead performance",
    "the cast",
    "the story",
    "the visual design",
    "the humour",
    "the editing",
    "the score",
]
_MOVIE_GOOD = [
    "was superb",
    "was brilliant",
    "was outstanding",
    "was beautifully done",
    "was gripping",
    "was moving",
    "was clever",
    "was a joy",
    "was spot on",
    "was stunning",
    "was wonderful",
    "was excellent",
    "was pitch-perfect",
    "was genuinely touching",
    "kept me hooked",
]
_MOVIE_BAD = [
    "was dull",
    "was awful",
    "fell flat",
    "was a mess",
    "was boring",
    "was clumsy",
    "was terrible",
    "was forgettable",
    "was lifeless",
    "was weak",
    "was painfully predictable",
    "made no sense",
    "was a chore to sit through",
    "was embarrassing",
    "dragged on forever",
]
_MOVIE_VERDICTS = {
    "positive": [
        "I loved every minute of it.",
        "A must-see.",
        "Easily one of the best films this year.",
        "I would happily watch it again.",
        "Highly recommended.",
        "It left me smiling for days.",
        "Two hours well spent.",
        "Go and see it.",
        "Ten out of ten.",
    ],
    "negative": [
        "What a waste of two hours.",
        "I want my money back.",
        "Avoid this one.",
        "I nearly fell asleep.",
        "One of the worst films I have seen.",
        "I regret buying a ticket.",
        "Skip it.",
        "Two out of ten.",
        "I walked out halfway through.",
    ],
}
_MOVIE_OPENERS = [
    "I watched {t} last night.",
    "{t} finally arrived in cinemas.",
    "Saw this {g} with friends.",
    "I went to see {t} on Friday.",
    "So, {t}.",
    "This {g} was on my list for months.",
    "",
]


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

_PRODUCTS = [
    "these headphones",
    "this blender",
    "the laptop",
    "this phone case",
    "the vacuum cleaner",
    "these running shoes",
    "this coffee maker",
    "the backpack",
    "this desk lamp",
    "the electric kettle",
    "this air fryer",
    "the smartwatch",
]
_PRODUCT_ASPECTS = {  # aspect -> (positive predicates, negative predicates)
    "the battery life": (["is excellent", "lasts for days"], ["is terrible", "barely lasts an hour"]),
    "the sound quality": (["is crisp and clear", "is excellent"], ["is tinny", "is awful"]),
    "the build quality": (["is solid", "feels premium"], ["is flimsy", "feels cheap"]),
    "delivery": (["was quick", "arrived a day early"], ["took three weeks", "was a nightmare"]),
    "the price": (["is great value", "is very fair"], ["is a rip-off", "is far too high"]),
    "customer service": (["was very helpful", "sorted everything out quickly"], ["was unhelpful", "never replied"]),
    "setup": (["was painless", "took two minutes"], ["was a nightmare", "took hours"]),
    "the design": (["is lovely", "looks great"], ["is ugly", "looks cheap"]),
    "the instructions": (["are clear", "are easy to follow"], ["are confusing", "are missing steps"]),
    "it": (["works perfectly", "exceeded my expectations"], ["stopped working after two days", "broke after a week"]),
    "the size": (["is just right", "is perfect for my desk"], ["is far too big", "is smaller than advertised"]),
}
_PRODUCT_VERDICTS = {
    "positive": [
        "Five stars.",
        "Would buy again.",
        "Highly recommend it to anyone.",
        "Worth every penny.",
        "Best purchase this year.",
    ],
    "negative": ["Returned it.", "One star.", "Do not buy.", "Save your money.", "Complete waste of money."],
}


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

_CLUBS = [
    "Riverside United",
    "Northfield Rovers",
    "Eastport City",
    "Lakeside Athletic",
    "Hillcrest Wanderers",
    "Westbridge FC",
    "Oakham Town",
    "Millbrook Rangers",
]
_COMPANIES = [
    "Nordtech",
    "Helix Motors",
    "Brightwave",
    "Solaris Energy",
    "Orbit Foods",
    "Kestrel Bank",
    "Meridian Air",
    "Vantage Retail",
    "Copperline",
    "Atlas Pharma",
]
_COUNTRIES = ["Spain", "Canada", "Japan", "Brazil", "Kenya", "Norway", "India", "Mexico", "Poland", "Chile"]
_PEOPLE = [
    f"{f} {l}"
    for f, l in [
        ("Ana", "Ruiz"),
        ("Tom", "Becker"),
        ("Li", "Wei"),
        ("Sara", "Novak"),
        ("Omar", "Haddad"),
        ("Eva", "Lind"),
        ("Marco", "Conti"),
        ("Priya", "Shah"),
    ]
]
_NEWS = {
    "sports": [
        "{club} beat {club2} {n}-{m} to reach the cup final",
        "{person} signs new three-year deal with {club}",
        "{club} sack manager after {n2} straight defeats",
        "{person} wins gold in the {event}",
        "Injury rules {person} out of the derby against {club}",
        "{club} fans celebrate first league title in {y} years",
        "Record crowd watches {club} thrash {club2}",
        "{country} name squad for the World Cup qualifiers",
        "{person} breaks national record in the {event}",
        "Late penalty earns {club} a draw at {club2}",
        "Tennis: {person} knocked out in the {round}",
        "{country} beat {country2} in the rugby final",
    ],
    "business": [
        "{company} shares jump {p}% after strong quarterly results",
        "{company} to cut {k} jobs as sales slow",
        "Central bank of {country} raises interest rates to {p}%",
        "{company} agrees ${b} billion takeover of {company2}",
        "{commodity} prices fall as demand weakens",
        "{company} profits beat analyst forecasts",
        "Inflation in {country} eases to {p}%",
        "Start-up {company} raises ${b} million in new funding",
        "{company} chief executive steps down after {y} years",
        "Stock markets in {country} slide on recession fears",
        "{company} opens new factory in {country}",
        "{commodity} exports from {country} rise for a third month",
    ],
    "science": [
        "Scientists discover new species of {animal} in {country}",
        "Space probe sends back images of {planet}",
        "Researchers find water ice on {planet}",
        "Physicists measure {particle} mass with record precision",
        "Fossil of giant {animal} ancestor unearthed in {country}",
        "Telescope spots galaxy {b} billion light-years away",
        "Team sequences the genome of the {animal}",
        "Astronomers detect planet orbiting a star near {planet}",
        "Study finds {animal}s can count to {n2}",
        "Ancient DNA reveals early farmers in {country}",
        "Chemists create a battery that charges in {n2} minutes",
        "Glacier in {country} shrinking faster than expected",
    ],
    "politics": [
        "Parliament passes new {policy} bill",
        "{person} meets {country} leader for trade talks",
        "Ruling party wins majority in {country} election",
        "Minister resigns over {scandal} scandal",
        "Senate rejects {policy} reform",
        "Prime minister of {country} calls snap election",
        "Opposition leader criticises government's {policy} plan",
        "Voters head to the polls in {country}",
        "{country} and {country2} sign border agreement",
        "Government of {country} announces {policy} reforms",
        "Coalition talks collapse in {country}",
        "{person} launches campaign for mayor of {city}",
    ],
    "entertainment": [
        "{person} to star in new {genre}",
        "{band} announce world tour for {year}",
        "{title} tops the box office for a {nth} week",
        "{person} releases surprise album",
        "{title} renewed for a {nth} season",
        "{person} wins best actor award at {festival}",
        "Streaming service orders new {genre} from {person}",
        "{band} reunite for one-off concert in {city}",
        "{title} musical opens to rave reviews in {city}",
        "{person} hosts this year's music awards",
        "Trailer for {title} breaks online viewing records",
        "Director {person} announces {genre} sequel",
    ],
}
_NEWS_SLOTS = dict(
    event=["400 metres", "marathon", "long jump", "100 metres", "triathlon", "high jump"],
    round=["first round", "second round", "quarter-finals", "semi-finals"],
    commodity=["Oil", "Coffee", "Copper", "Wheat", "Gold", "Cocoa"],
    animal=["frog", "beetle", "bat", "lizard", "spider", "orchid bee", "shark", "owl"],
    planet=["Mars", "Jupiter's moon Europa", "Saturn's rings", "Venus", "Mercury", "the Moon"],
    particle=["neutrino", "top quark", "W boson", "Higgs boson"],
    policy=["climate", "housing", "pension", "health", "education", "immigration", "tax", "energy"],
    scandal=["expenses", "lobbying", "contracts", "leaked emails", "donations"],
    band=["The Midnight Owls", "Silver Lining", "Paper Moons", "The Static", "Velvet Road", "Northern Echo"],
    festival=["Cannes", "Venice", "Berlin", "Toronto", "Sundance"],
    city=["Paris", "Chicago", "Sydney", "Madrid", "Seoul", "Dublin", "Vienna"],
    genre=["thriller", "comedy", "drama", "fantasy film", "crime series", "period drama"],
    nth=["second", "third", "fourth", "fifth"],
)
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

_HAM = [
    "Hey {name}, are we still on for {activity} at {time}?",
    "Can you pick up some {item} on your way home?",
    "Running {n} minutes late, sorry!",
    "Happy birthday {name}! Hope you have a great day.",
    "Did you finish the {task} yet?",
    "I'll call you after the {event}.",
    "Thanks for {meal} last night, it was lovely.",
    "The meeting has moved to {time} in room {room}.",
    "{relative} says {meal} is at {time}.",
    "Don't forget {item} tomorrow.",
    "Just landed, see you at the station in {n} minutes.",
    "Can we move {activity} to next week? Something came up.",
    "Are you coming to the {event} on {weekday}?",
    "Left {item} at your place, can I grab it later?",
    "Good luck with the {task} today!",
    "ok see you at {time} then",
    "Where did you park? I can't find the car.",
    "{name} is joining us for {meal} on {weekday}, hope that's ok.",
    "Can you send me the photos from the {event}?",
    "Bus is stuck in traffic, be there around {time}.",
    "I'm outside the {shop}, where are you?",
]
_SPAM = [
    "WINNER!! You have been selected to receive a £{money} prize. Call {phone} now to claim.",
    "Congratulations! Your mobile number has won a {prize}. Text CLAIM to {code}.",
    "URGENT: Your account has been suspended. Verify your details at {url}",
    "FREE {prize}! Reply YES to {code} to get yours today. T&Cs apply.",
    "You have an unclaimed refund of ${money}. Click {url} to receive it.",
    "Lowest loan rates guaranteed! Call {phone} now, no credit checks!",
    "Final notice: your parcel could not be delivered. Pay the £{fee} fee at {url}",
    "Earn ${money} a week working from home! Reply INFO to {code}.",
    "You are our lucky customer today! Claim your {prize} at {url} before midnight.",
    "Your {service} subscription has expired. Renew now at {url} to avoid losing access.",
    "Exclusive offer: 90% off {item2}! Limited stock, order at {url}",
    "Dear customer, we noticed unusual activity. Confirm your PIN at {url} immediately.",
]
_SPAM_DOMAINS = ("claim-now", "secure-verify", "prize4u", "refund-centre", "deliv-track")
_HAM_SLOTS = dict(
    activity=[
        "coffee",
        "the gym",
        "lunch",
        "football practice",
        "the cinema",
        "band rehearsal",
        "our run",
        "the study group",
    ],
    item=[
        "milk",
        "bread",
        "batteries",
        "eggs",
        "your keys",
        "the charger",
        "an umbrella",
        "your jacket",
        "the tickets",
        "my book",
    ],
    task=["report", "essay", "presentation", "tax form", "homework", "driving test", "job application"],
    event=["meeting", "match", "party", "concert", "interview", "dentist", "wedding", "barbecue"],
    meal=["dinner", "lunch", "breakfast", "brunch"],
    relative=["Mum", "Dad", "Grandma", "Auntie Jo"],
    weekday=["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    shop=["bakery", "pharmacy", "supermarket", "bookshop", "cinema"],
)


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

_INTENTS = {
    "set_alarm": [
        "Set an alarm for {time}",
        "Wake me up at {time} {day}",
        "Can you set an alarm for {time}?",
        "I need an alarm at {time} {day}",
        "Alarm for {time} please",
    ],
    "weather": [
        "What's the weather like in {city} {day}?",
        "Will it rain in {city} {day}?",
        "How hot will it be in {city} {day}?",
        "Do I need an umbrella in {city} {day}?",
        "Weather forecast for {city} {day}",
    ],
    "play_music": [
        "Play some {genre} music",
        "Put on my {genre} playlist {day}",
        "I want to listen to {artist}",
        "Play the latest album by {artist}",
        "Can you play something {mood} by {artist}?",
    ],
    "book_restaurant": [
        "Book a table for {n} at {time}",
        "Reserve a table at an {cuisine} restaurant {day}",
        "I'd like to book dinner for {n} people {day}",
        "Find me a table for two at {time}",
        "Make a reservation at the {cuisine} place for {n}",
    ],
    "set_reminder": [
        "Remind me to {chore} {day}",
        "Set a reminder to {chore} at {time}",
        "Don't let me forget to {chore} {day}",
        "Can you remind me to {chore}?",
        "I need a reminder to {chore} {day}",
    ],
    "get_directions": [
        "How do I get to {place} from {origin}?",
        "Directions to {place} please",
        "What's the fastest way to {place} {day}?",
        "Navigate to {place}",
        "How far is {place} from {origin}?",
    ],
    "smart_home": [
        "Turn off the lights in the {room}",
        "Set the thermostat to {deg} degrees",
        "Switch on the {room} heater",
        "Dim the {room} lights to {pct} percent",
        "Lock the {door} door",
    ],
    "shopping_list": [
        "Add {grocery} to my shopping list",
        "Put {grocery} and {grocery2} on the list",
        "Is {grocery} on my shopping list?",
        "Remove {grocery} from my shopping list",
        "I need to buy {grocery}, add it to the list",
    ],
    "check_balance": [
        "What's my {account} account balance?",
        "How much money do I have in my {account} account?",
        "Check my {account} balance",
        "Did my salary arrive in my {account} account {day}?",
        "Show me the balance of my {account} account",
    ],
}
_INTENT_SLOTS = dict(
    city=["Paris", "Boston", "Tokyo", "Madrid", "Berlin", "Sydney", "Cairo", "Lima"],
    day=["today", "tomorrow", "this weekend", "on Friday", "tonight", "on Monday"],
    genre=["jazz", "rock", "classical", "hip hop", "country", "lo-fi", "reggae"],
    artist=["the Beatles", "Adele", "Miles Davis", "Taylor Swift", "Queen", "Bob Marley"],
    mood=["relaxing", "upbeat", "sad", "energetic"],
    cuisine=["Italian", "Indian", "Thai", "Mexican", "Japanese"],
    chore=[
        "call mum",
        "pay the rent",
        "water the plants",
        "take my medicine",
        "send the invoice",
        "feed the cat",
        "book the dentist",
        "renew my passport",
    ],
    place=[
        "the airport",
        "the train station",
        "the nearest pharmacy",
        "the city centre",
        "the museum",
        "the stadium",
        "the hospital",
    ],
    origin=["here", "my office", "the hotel", "home"],
    room=["kitchen", "bedroom", "living room", "bathroom", "office", "hallway"],
    door=["front", "back", "garage", "garden"],
    grocery=["milk", "eggs", "coffee", "bananas", "rice", "olive oil", "butter"],
    grocery2=["bread", "cheese", "tomatoes", "yogurt", "apples"],
    account=["savings", "checking", "current", "joint", "business"],
)


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
