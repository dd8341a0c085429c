"""Generators of translation tasks: grammar-built English sentences into French/German/Spanish/Italian, number words."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .common import Example, TaskSpec, a_or_an, capitalize_first, number_to_words, pick

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

PEOPLE = {
    "man": dict(
        en=("man", "men"),
        fr=("homme", "hommes", "m"),
        de=("Mann", "Männer", "m"),
        es=("hombre", "hombres", "m"),
        it=("uomo", "uomini", "m"),
    ),
    "woman": dict(
        en=("woman", "women"),
        fr=("femme", "femmes", "f"),
        de=("Frau", "Frauen", "f"),
        es=("mujer", "mujeres", "f"),
        it=("donna", "donne", "f"),
    ),
    "child": dict(
        en=("child", "children"),
        fr=("enfant", "enfants", "m"),
        de=("Kind", "Kinder", "n"),
        es=("niño", "niños", "m"),
        it=("bambino", "bambini", "m"),
    ),
    "boy": dict(
        en=("boy", "boys"),
        fr=("garçon", "garçons", "m"),
        de=("Junge", "Jungen", "m"),
        es=("chico", "chicos", "m"),
        it=("ragazzo", "ragazzi", "m"),
    ),
    "girl": dict(
        en=("girl", "girls"),
        fr=("fille", "filles", "f"),
        de=("Mädchen", "Mädchen", "n"),
        es=("chica", "chicas", "f"),
        it=("ragazza", "ragazze", "f"),
    ),
    "teacher": dict(
        en=("teacher", "teachers"),
        fr=("professeur", "professeurs", "m"),
        de=("Lehrer", "Lehrer", "m"),
        es=("profesor", "profesores", "m"),
        it=("insegnante", "insegnanti", "m"),
    ),
    "doctor": dict(
        en=("doctor", "doctors"),
        fr=("médecin", "médecins", "m"),
        de=("Arzt", "Ärzte", "m"),
        es=("médico", "médicos", "m"),
        it=("medico", "medici", "m"),
    ),
    "student": dict(
        en=("student", "students"),
        fr=("étudiant", "étudiants", "m"),
        de=("Student", "Studenten", "m"),
        es=("estudiante", "estudiantes", "m"),
        it=("studente", "studenti", "m"),
    ),
    "friend": dict(
        en=("friend", "friends"),
        fr=("ami", "amis", "m"),
        de=("Freund", "Freunde", "m"),
        es=("amigo", "amigos", "m"),
        it=("amico", "amici", "m"),
    ),
    "neighbour": dict(
        en=("neighbour", "neighbours"),
        fr=("voisin", "voisins", "m"),
        de=("Nachbar", "Nachbarn", "m"),
        es=("vecino", "vecinos", "m"),
        it=("vicino", "vicini", "m"),
    ),
    "baker": dict(
        en=("baker", "bakers"),
        fr=("boulanger", "boulangers", "m"),
        de=("Bäcker", "Bäcker", "m"),
        es=("panadero", "panaderos", "m"),
        it=("fornaio", "fornai", "m"),
    ),
    "cook": dict(
        en=("cook", "cooks"),
        fr=("cuisinier", "cuisiniers", "m"),
        de=("Koch", "Köche", "m"),
        es=("cocinero", "cocineros", "m"),
        it=("cuoco", "cuochi", "m"),
    ),
}

# tags: which verbs take the noun; adj: which adjective class fits it; mass nouns only take "the" + singular.
THINGS = {
    "apple": dict(
        en=("apple", "apples"),
        fr=("pomme", "pommes", "f"),
        de=("Apfel", "Äpfel", "m"),
        es=("manzana", "manzanas", "f"),
        it=("mela", "mele", "f"),
        tags={"food"},
        adj="food",
    ),
    "bread": dict(
        en=("bread", "breads"),
        fr=("pain", "pains", "m"),
        de=("Brot", "Brote", "n"),
        es=("pan", "panes", "m"),
        it=("pane", "pani", "m"),
        tags={"food"},
        adj="food",
        mass=True,
    ),
    "cake": dict(
        en=("cake", "cakes"),
        fr=("gâteau", "gâteaux", "m"),
        de=("Kuchen", "Kuchen", "m"),
        es=("pastel", "pasteles", "m"),
        it=("torta", "torte", "f"),
        tags={"food"},
        adj="food",
    ),
    "orange": dict(
        en=("orange", "oranges"),
        fr=("orange", "oranges", "f"),
        de=("Orange", "Orangen", "f"),
        es=("naranja", "naranjas", "f"),
        it=("arancia", "arance", "f"),
        tags={"food"},
        adj="food",
    ),
    "soup": dict(
        en=("soup", "soups"),
        fr=("soupe", "soupes", "f"),
        de=("Suppe", "Suppen", "f"),
        es=("sopa", "sopas", "f"),
        it=("zuppa", "zuppe", "f"),
        tags={"food"},
        adj="food",
        mass=True,
    ),
    "cheese": dict(
        en=("cheese", "cheeses"),
        fr=("fromage", "fromages", "m"),
        de=("Käse", "Käse", "m"),
        es=("queso", "quesos", "m"),
        it=("formaggio", "formaggi", "m"),
        tags={"food"},
        adj="food",
        mass=True,
    ),
    "banana": dict(
        en=("banana", "bananas"),
        fr=("banane", "bananes", "f"),
        de=("Banane", "Bananen", "f"),
        es=("plátano", "plátanos", "m"),
        it=("banana", "banane", "f"),
        tags={"food"},
        adj="food",
    ),
    "milk": dict(
        en=("milk", "milks"),
        fr=("lait", "laits", "m"),
        de=("Milch", "Milch", "f"),
        es=("leche", "leches", "f"),
        it=("latte", "latti", "m"),
        tags={"drink"},
        adj="drink",
        mass=True,
    ),
    "coffee": dict(
        en=("coffee", "coffees"),
        fr=("café", "cafés", "m"),
        de=("Kaffee", "Kaffees", "m"),
        es=("café", "cafés", "m"),
        it=("caffè", "caffè", "m"),
        tags={"drink"},
        adj="drink",
        mass=True,
    ),
    "tea": dict(
        en=("tea", "teas"),
        fr=("thé", "thés", "m"),
        de=("Tee", "Tees", "m"),
        es=("té", "tés", "m"),
        it=("tè", "tè", "m"),
        tags={"drink"},
        adj="drink",
        mass=True,
    ),
    "juice": dict(
        en=("juice", "juices"),
        fr=("jus", "jus", "m"),
        de=("Saft", "Säfte", "m"),
        es=("zumo", "zumos", "m"),
        it=("succo", "succhi", "m"),
        tags={"drink"},
        adj="drink",
        mass=True,
    ),
    "wine": dict(
        en=("wine", "wines"),
        fr=("vin", "vins", "m"),
        de=("Wein", "Weine", "m"),
        es=("vino", "vinos", "m"),
        it=("vino", "vini", "m"),
        tags={"drink"},
        adj="drink",
        mass=True,
    ),
    "book": dict(
        en=("book", "books"),
        fr=("livre", "livres", "m"),
        de=("Buch", "Bücher", "n"),
        es=("libro", "libros", "m"),
        it=("libro", "libri", "m"),
        tags={"text", "write", "open", "portable"},
        adj="thing",
    ),
    "newspaper": dict(
        en=("newspaper", "newspapers"),
        fr=("journal", "journaux", "m"),
        de=("Zeitung", "Zeitungen", "f"),
        es=("periódico", "periódicos", "m"),
        it=("giornale", "giornali", "m"),
        tags={"text", "portable"},
        adj="thing",
    ),
    "letter": dict(
        en=("letter", "letters"),
        fr=("lettre", "lettres", "f"),
        de=("Brief", "Briefe", "m"),
        es=("carta", "cartas", "f"),
        it=("lettera", "lettere", "f"),
        tags={"text", "write", "open", "portable"},
        adj="thing",
    ),
    "magazine": dict(
        en=("magazine", "magazines"),
        fr=("magazine", "magazines", "m"),
        de=("Zeitschrift", "Zeitschriften", "f"),
        es=("revista", "revistas", "f"),
        it=("rivista", "riviste", "f"),
        tags={"text", "portable"},
        adj="thing",
    ),
    "door": dict(
        en=("door", "doors"),
        fr=("porte", "portes", "f"),
        de=("Tür", "Türen", "f"),
        es=("puerta", "puertas", "f"),
        it=("porta", "porte", "f"),
        tags={"open", "fixed"},
        adj="thing",
    ),
    "window": dict(
        en=("window", "windows"),
        fr=("fenêtre", "fenêtres", "f"),
        de=("Fenster", "Fenster", "n"),
        es=("ventana", "ventanas", "f"),
        it=("finestra", "finestre", "f"),
        tags={"open", "fixed"},
        adj="thing",
    ),
    "box": dict(
        en=("box", "boxes"),
        fr=("boîte", "boîtes", "f"),
        de=("Kiste", "Kisten", "f"),
        es=("caja", "cajas", "f"),
        it=("scatola", "scatole", "f"),
        tags={"open", "portable"},
        adj="thing",
    ),
    "bag": dict(
        en=("bag", "bags"),
        fr=("sac", "sacs", "m"),
        de=("Tasche", "Taschen", "f"),
        es=("bolsa", "bolsas", "f"),
        it=("borsa", "borse", "f"),
        tags={"open", "portable"},
        adj="thing",
    ),
    "bottle": dict(
        en=("bottle", "bottles"),
        fr=("bouteille", "bouteilles", "f"),
        de=("Flasche", "Flaschen", "f"),
        es=("botella", "botellas", "f"),
        it=("bottiglia", "bottiglie", "f"),
        tags={"open", "portable"},
        adj="thing",
    ),
    "car": dict(
        en=("car", "cars"),
        fr=("voiture", "voitures", "f"),
        de=("Auto", "Autos", "n"),
        es=("coche", "coches", "m"),
        it=("macchina", "macchine", "f"),
        tags=set(),
        adj="thing",
    ),
    "house": dict(
        en=("house", "houses"),
        fr=("maison", "maisons", "f"),
        de=("Haus", "Häuser", "n"),
        es=("casa", "casas", "f"),
        it=("casa", "case", "f"),
        tags=set(),
        adj="thing",
    ),
    "key": dict(
        en=("key", "keys"),
        fr=("clé", "clés", "f"),
        de=("Schlüssel", "Schlüssel", "m"),
        es=("llave", "llaves", "f"),
        it=("chiave", "chiavi", "f"),
        tags={"portable"},
        adj="thing",
    ),
    "phone": dict(
        en=("phone", "phones"),
        fr=("téléphone", "téléphones", "m"),
        de=("Telefon", "Telefone", "n"),
        es=("teléfono", "teléfonos", "m"),
        it=("telefono", "telefoni", "m"),
        tags={"portable"},
        adj="thing",
    ),
    "chair": dict(
        en=("chair", "chairs"),
        fr=("chaise", "chaises", "f"),
        de=("Stuhl", "Stühle", "m"),
        es=("silla", "sillas", "f"),
        it=("sedia", "sedie", "f"),
        tags={"portable"},
        adj="thing",
    ),
    "table": dict(
        en=("table", "tables"),
        fr=("table", "tables", "f"),
        de=("Tisch", "Tische", "m"),
        es=("mesa", "mesas", "f"),
        it=("tavolo", "tavoli", "m"),
        tags=set(),
        adj="thing",
    ),
    "bicycle": dict(
        en=("bicycle", "bicycles"),
        fr=("vélo", "vélos", "m"),
        de=("Fahrrad", "Fahrräder", "n"),
        es=("bicicleta", "bicicletas", "f"),
        it=("bicicletta", "biciclette", "f"),
        tags=set(),
        adj="thing",
    ),
    "hat": dict(
        en=("hat", "hats"),
        fr=("chapeau", "chapeaux", "m"),
        de=("Hut", "Hüte", "m"),
        es=("sombrero", "sombreros", "m"),
        it=("cappello", "cappelli", "m"),
        tags={"portable"},
        adj="thing",
    ),
    "ball": dict(
        en=("ball", "balls"),
        fr=("ballon", "ballons", "m"),
        de=("Ball", "Bälle", "m"),
        es=("pelota", "pelotas", "f"),
        it=("palla", "palle", "f"),
        tags={"portable"},
        adj="thing",
    ),
    "pen": dict(
        en=("pen", "pens"),
        fr=("stylo", "stylos", "m"),
        de=("Stift", "Stifte", "m"),
        es=("bolígrafo", "bolígrafos", "m"),
        it=("penna", "penne", "f"),
        tags={"portable"},
        adj="thing",
    ),
    "computer": dict(
        en=("computer", "computers"),
        fr=("ordinateur", "ordinateurs", "m"),
        de=("Computer", "Computer", "m"),
        es=("ordenador", "ordenadores", "m"),
        it=("computer", "computer", "m"),
        tags={"portable"},
        adj="thing",
    ),
    "umbrella": dict(
        en=("umbrella", "umbrellas"),
        fr=("parapluie", "parapluies", "m"),
        de=("Regenschirm", "Regenschirme", "m"),
        es=("paraguas", "paraguas", "m"),
        it=("ombrello", "ombrelli", "m"),
        tags={"portable"},
        adj="thing",
    ),
    "flower": dict(
        en=("flower", "flowers"),
        fr=("fleur", "fleurs", "f"),
        de=("Blume", "Blumen", "f"),
        es=("flor", "flores", "f"),
        it=("fiore", "fiori", "m"),
        tags={"portable"},
        adj="thing",
    ),
}

# Verb entries: en = (base, third person singular); others = present forms for I, you, he/she, we, they.
# objects: the THINGS tags it accepts (None: any noun not tagged "fixed").
VERBS = {
    "see": dict(
        en=("see", "sees"),
        fr=["vois", "vois", "voit", "voyons", "voient"],
        de=["sehe", "siehst", "sieht", "sehen", "sehen"],
        es=["veo", "ves", "ve", "vemos", "ven"],
        it=["vedo", "vedi", "vede", "vediamo", "vedono"],
        objects="any",
    ),
    "buy": dict(
        en=("buy", "buys"),
        fr=["achète", "achètes", "achète", "achetons", "achètent"],
        de=["kaufe", "kaufst", "kauft", "kaufen", "kaufen"],
        es=["compro", "compras", "compra", "compramos", "compran"],
        it=["compro", "compri", "compra", "compriamo", "comprano"],
        objects=None,
    ),
    "have": dict(
        en=("have", "has"),
        fr=["ai", "as", "a", "avons", "ont"],
        de=["habe", "hast", "hat", "haben", "haben"],
        es=["tengo", "tienes", "tiene", "tenemos", "tienen"],
        it=["ho", "hai", "ha", "abbiamo", "hanno"],
        objects=None,
    ),
    "want": dict(
        en=("want", "wants"),
        fr=["veux", "veux", "veut", "voulons", "veulent"],
        de=["will", "willst", "will", "wollen", "wollen"],
        es=["quiero", "quieres", "quiere", "queremos", "quieren"],
        it=["voglio", "vuoi", "vuole", "vogliamo", "vogliono"],
        objects=None,
    ),
    "eat": dict(
        en=("eat", "eats"),
        fr=["mange", "manges", "mange", "mangeons", "mangent"],
        de=["esse", "isst", "isst", "essen", "essen"],
        es=["como", "comes", "come", "comemos", "comen"],
        it=["mangio", "mangi", "mangia", "mangiamo", "mangiano"],
        objects={"food"},
    ),
    "drink": dict(
        en=("drink", "drinks"),
        fr=["bois", "bois", "boit", "buvons", "boivent"],
        de=["trinke", "trinkst", "trinkt", "trinken", "trinken"],
        es=["bebo", "bebes", "bebe", "bebemos", "beben"],
        it=["bevo", "bevi", "beve", "beviamo", "bevono"],
        objects={"drink"},
    ),
    "read": dict(
        en=("read", "reads"),
        fr=["lis", "lis", "lit", "lisons", "lisent"],
        de=["lese", "liest", "liest", "lesen", "lesen"],
        es=["leo", "lees", "lee", "leemos", "leen"],
        it=["leggo", "leggi", "legge", "leggiamo", "leggono"],
        objects={"text"},
    ),
    "write": dict(
        en=("write", "writes"),
        fr=["écris", "écris", "écrit", "écrivons", "écrivent"],
        de=["schreibe", "schreibst", "schreibt", "schreiben", "schreiben"],
        es=["escribo", "escribes", "escribe", "escribimos", "escriben"],
        it=["scrivo", "scrivi", "scrive", "scriviamo", "scrivono"],
        objects={"write"},
    ),
    "open": dict(
        en=("open", "opens"),
        fr=["ouvre", "ouvres", "ouvre", "ouvrons", "ouvrent"],
        de=["öffne", "öffnest", "öffnet", "öffnen", "öffnen"],
        es=["abro", "abres", "abre", "abrimos", "abren"],
        it=["apro", "apri", "apre", "apriamo", "aprono"],
        objects={"open"},
    ),
    "find": dict(
        en=("find", "finds"),
        fr=["trouve", "trouves", "trouve", "trouvons", "trouvent"],
        de=["finde", "findest", "findet", "finden", "finden"],
        es=["encuentro", "encuentras", "encuentra", "encontramos", "encuentran"],
        it=["trovo", "trovi", "trova", "troviamo", "trovano"],
        objects={"portable"},
    ),
    "carry": dict(
        en=("carry", "carries"),
        fr=["porte", "portes", "porte", "portons", "portent"],
        de=["trage", "trägst", "trägt", "tragen", "tragen"],
        es=["llevo", "llevas", "lleva", "llevamos", "llevan"],
        it=["porto", "porti", "porta", "portiamo", "portano"],
        objects={"portable"},
    ),
    "look for": dict(
        en=("look for", "looks for"),
        fr=["cherche", "cherches", "cherche", "cherchons", "cherchent"],
        de=["suche", "suchst", "sucht", "suchen", "suchen"],
        es=["busco", "buscas", "busca", "buscamos", "buscan"],
        it=["cerco", "cerchi", "cerca", "cerchiamo", "cercano"],
        objects={"portable"},
    ),
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
ADJECTIVES = {
    "big": dict(
        cls="thing food",
        fr=("grand", "grande", "grands", "grandes"),
        fr_pre=True,
        de=("groß", "groß"),
        es=("grande", "grande", "grandes", "grandes"),
        es_cop="ser",
        it=("grande", "grande", "grandi", "grandi"),
    ),
    "small": dict(
        cls="thing food",
        fr=("petit", "petite", "petits", "petites"),
        fr_pre=True,
        de=("klein", "klein"),
        es=("pequeño", "pequeña", "pequeños", "pequeñas"),
        es_cop="ser",
        it=("piccolo", "piccola", "piccoli", "piccole"),
    ),
    "red": dict(
        cls="thing",
        fr=("rouge", "rouge", "rouges", "rouges"),
        de=("rot", "rot"),
        es=("rojo", "roja", "rojos", "rojas"),
        es_cop="ser",
        it=("rosso", "rossa", "rossi", "rosse"),
    ),
    "black": dict(
        cls="thing",
        fr=("noir", "noire", "noirs", "noires"),
        de=("schwarz", "schwarz"),
        es=("negro", "negra", "negros", "negras"),
        es_cop="ser",
        it=("nero", "nera", "neri", "nere"),
    ),
    "white": dict(
        cls="thing",
        fr=("blanc", "blanche", "blancs", "blanches"),
        de=("weiß", "weiß"),
        es=("blanco", "blanca", "blancos", "blancas"),
        es_cop="ser",
        it=("bianco", "bianca", "bianchi", "bianche"),
    ),
    "green": dict(
        cls="thing",
        fr=("vert", "verte", "verts", "vertes"),
        de=("grün", "grün"),
        es=("verde", "verde", "verdes", "verdes"),
        es_cop="ser",
        it=("verde", "verde", "verdi", "verdi"),
    ),
    "yellow": dict(
        cls="thing",
        fr=("jaune", "jaune", "jaunes", "jaunes"),
        de=("gelb", "gelb"),
        es=("amarillo", "amarilla", "amarillos", "amarillas"),
        es_cop="ser",
        it=("giallo", "gialla", "gialli", "gialle"),
    ),
    "blue": dict(
        cls="thing",
        fr=("bleu", "bleue", "bleus", "bleues"),
        de=("blau", "blau"),
        es=("azul", "azul", "azules", "azules"),
        es_cop="ser",
        it=("blu", "blu", "blu", "blu"),
    ),
    "new": dict(
        cls="thing",
        fr=("nouveau", "nouvelle", "nouveaux", "nouvelles"),
        fr_pre=True,
        fr_mv="nouvel",
        de=("neu", "neu"),
        es=("nuevo", "nueva", "nuevos", "nuevas"),
        es_cop="ser",
        it=("nuovo", "nuova", "nuovi", "nuove"),
    ),
    "old": dict(
        cls="thing",
        fr=("vieux", "vieille", "vieux", "vieilles"),
        fr_pre=True,
        fr_mv="vieil",
        de=("alt", "alt"),
        es=("viejo", "vieja", "viejos", "viejas"),
        es_cop="ser",
        it=("vecchio", "vecchia", "vecchi", "vecchie"),
    ),
    "expensive": dict(
        cls="thing",
        fr=("cher", "chère", "chers", "chères"),
        de=("teuer", "teur"),
        es=("caro", "cara", "caros", "caras"),
        es_cop="ser",
        it=("caro", "cara", "cari", "care"),
    ),
    "beautiful": dict(
        cls="thing",
        fr=("beau", "belle", "beaux", "belles"),
        fr_pre=True,
        fr_mv="bel",
        de=("schön", "schön"),
        es=("bonito", "bonita", "bonitos", "bonitas"),
        es_cop="ser",
        it=("bello", "bella", "belli", "belle"),
    ),
    "good": dict(
        cls="food drink",
        fr=("bon", "bonne", "bons", "bonnes"),
        fr_pre=True,
        de=("gut", "gut"),
        es=("bueno", "buena", "buenos", "buenas"),
        es_cop="ser",
        it=("buono", "buona", "buoni", "buone"),
    ),
    "hot": dict(
        cls="food drink",
        fr=("chaud", "chaude", "chauds", "chaudes"),
        de=("heiß", "heiß"),
        es=("caliente", "caliente", "calientes", "calientes"),
        es_cop="estar",
        it=("caldo", "calda", "caldi", "calde"),
    ),
    "cold": dict(
        cls="food drink",
        fr=("froid", "froide", "froids", "froides"),
        de=("kalt", "kalt"),
        es=("frío", "fría", "fríos", "frías"),
        es_cop="estar",
        it=("freddo", "fredda", "freddi", "fredde"),
    ),
    # Adjectives for people (predicative use only).
    "happy": dict(
        cls="person",
        fr=("heureux", "heureuse", "heureux", "heureuses"),
        de=("glücklich", "glücklich"),
        es=("contento", "contenta", "contentos", "contentas"),
        es_cop="estar",
        it=("felice", "felice", "felici", "felici"),
    ),
    "tired": dict(
        cls="person",
        fr=("fatigué", "fatiguée", "fatigués", "fatiguées"),
        de=("müde", "müde"),
        es=("cansado", "cansada", "cansados", "cansadas"),
        es_cop="estar",
        it=("stanco", "stanca", "stanchi", "stanche"),
    ),
    "sad": dict(
        cls="person",
        fr=("triste", "triste", "tristes", "tristes"),
        de=("traurig", "traurig"),
        es=("triste", "triste", "tristes", "tristes"),
        es_cop="estar",
        it=("triste", "triste", "tristi", "tristi"),
    ),
    "busy": dict(
        cls="person",
        fr=("occupé", "occupée", "occupés", "occupées"),
        de=("beschäftigt", "beschäftigt"),
        es=("ocupado", "ocupada", "ocupados", "ocupadas"),
        es_cop="estar",
        it=("occupato", "occupata", "occupati", "occupate"),
    ),
    "sick": dict(
        cls="person",
        fr=("malade", "malade", "malades", "malades"),
        de=("krank", "krank"),
        es=("enfermo", "enferma", "enfermos", "enfermas"),
        es_cop="estar",
        it=("malato", "malata", "malati", "malate"),
    ),
    "young": dict(
        cls="person",
        fr=("jeune", "jeune", "jeunes", "jeunes"),
        de=("jung", "jung"),
        es=("joven", "joven", "jóvenes", "jóvenes"),
        es_cop="ser",
        it=("giovane", "giovane", "giovani", "giovani"),
    ),
    "tall": dict(
        cls="person",
        fr=("grand", "grande", "grands", "grandes"),
        de=("groß", "groß"),
        es=("alto", "alta", "altos", "altas"),
        es_cop="ser",
        it=("alto", "alta", "alti", "alte"),
    ),
    "rich": dict(
        cls="person",
        fr=("riche", "riche", "riches", "riches"),
        de=("reich", "reich"),
        es=("rico", "rica", "ricos", "ricas"),
        es_cop="ser",
        it=("ricco", "ricca", "ricchi", "ricche"),
    ),
}

# Location phrases are translated as fixed units (this avoids case and contraction rules for prepositions).
LOCATIONS = {
    "in the garden": dict(fr="dans le jardin", de="im Garten", es="en el jardín", it="nel giardino"),
    "in the kitchen": dict(fr="dans la cuisine", de="in der Küche", es="en la cocina", it="in cucina"),
    "at school": dict(fr="à l'école", de="in der Schule", es="en la escuela", it="a scuola"),
    "in the park": dict(fr="dans le parc", de="im Park", es="en el parque", it="nel parco"),
    "at home": dict(fr="à la maison", de="zu Hause", es="en casa", it="a casa"),
    "in the office": dict(fr="au bureau", de="im Büro", es="en la oficina", it="in ufficio"),
    "in the city": dict(fr="en ville", de="in der Stadt", es="en la ciudad", it="in città"),
    "at the market": dict(fr="au marché", de="auf dem Markt", es="en el mercado", it="al mercato"),
    "in the library": dict(fr="à la bibliothèque", de="in der Bibliothek", es="en la biblioteca", it="in biblioteca"),
    "at the station": dict(fr="à la gare", de="am Bahnhof", es="en la estación", it="alla stazione"),
}


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
    if frame.negated:
        verb_group = [_fr_elide("ne", verb), verb, "pas"]
    else:
        verb_group = [verb]
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
