"""Word pools for the JSON templates, and the train/eval split of every pool.

Contract: `Pools(split)` exposes each pool restricted to its split. Every 4th entry of a pool
(index % 4 == 3) belongs to eval, the rest to train, so the two splits share no entity, topic,
key name, domain or count (counts: `Pools.count(lo, hi)`, value lo+1, lo+4, ... go to eval). Every
prompt names at least one pooled parameter, hence no eval prompt can equal a training prompt.
Gold *values* (ADJECTIVES, NOUNS, CITIES) are not split: they are answers, not prompt parameters.
"""
from __future__ import annotations

import random
from typing import Sequence

ADJECTIVES = ("Amber", "Silent", "Golden", "Crimson", "Northern", "Swift", "Hidden", "Bright", "Quiet",
              "Silver", "Ancient", "Blue", "Wild", "Lucky", "Iron", "Velvet", "Misty", "Royal")
NOUNS = ("Harbor", "Falcon", "Garden", "River", "Summit", "Lantern", "Orchard", "Meadow", "Beacon",
         "Canyon", "Willow", "Comet", "Forge", "Atlas", "Harvest", "Pioneer", "Anchor", "Echo")

ENTITIES = ("book", "movie", "restaurant", "employee", "product", "student", "city", "car", "song",
            "recipe", "hotel", "course", "museum", "laptop", "podcast", "bicycle", "airport", "planet",
            "painting", "smartphone", "concert", "hospital", "library", "startup", "athlete", "volcano",
            "river", "board game", "camera", "ship", "bakery", "theater", "satellite", "garden",
            "video game", "bridge", "festival", "warehouse", "vineyard", "marathon")

TOPICS = {
    "fruits": ("apple", "mango", "pear", "kiwi", "plum", "cherry", "banana", "apricot"),
    "programming languages": ("Python", "Rust", "Go", "Haskell", "Kotlin", "Ruby", "Swift", "Julia"),
    "European capitals": ("Paris", "Madrid", "Rome", "Vienna", "Oslo", "Lisbon", "Prague", "Dublin"),
    "musical instruments": ("violin", "cello", "flute", "oboe", "trumpet", "harp", "piano", "banjo"),
    "planets": ("Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"),
    "vegetables": ("carrot", "leek", "spinach", "kale", "radish", "celery", "onion", "pea"),
    "dog breeds": ("beagle", "poodle", "boxer", "collie", "husky", "pug", "dachshund", "terrier"),
    "board games": ("chess", "go", "checkers", "backgammon", "Catan", "Risk", "Scrabble", "Clue"),
    "colors": ("red", "teal", "indigo", "amber", "crimson", "olive", "navy", "ivory"),
    "sports": ("tennis", "rugby", "cricket", "hockey", "golf", "rowing", "judo", "fencing"),
    "spices": ("cumin", "saffron", "paprika", "nutmeg", "clove", "cardamom", "turmeric", "anise"),
    "rivers": ("Nile", "Danube", "Amazon", "Rhine", "Volga", "Ganges", "Mekong", "Seine"),
    "gemstones": ("ruby", "opal", "topaz", "jade", "garnet", "emerald", "sapphire", "onyx"),
    "birds": ("robin", "heron", "falcon", "owl", "swift", "wren", "puffin", "crane"),
    "cloud services": ("storage", "queue", "CDN", "database", "cache", "functions", "DNS", "registry"),
    "trees": ("oak", "birch", "maple", "cedar", "willow", "pine", "ash", "elm"),
    "cheeses": ("brie", "gouda", "cheddar", "feta", "gruyere", "manchego", "stilton", "edam"),
    "constellations": ("Orion", "Lyra", "Cygnus", "Draco", "Pegasus", "Perseus", "Cassiopeia", "Aquila"),
    "dances": ("tango", "waltz", "salsa", "samba", "polka", "foxtrot", "rumba", "swing"),
    "metals": ("iron", "copper", "zinc", "nickel", "cobalt", "tin", "silver", "titanium"),
}

STRING_KEYS = ("name", "title", "city", "country", "color", "author", "brand", "category", "label",
               "language", "nickname", "genre", "owner", "region", "model", "publisher", "species",
               "manufacturer", "department", "street", "username", "headline", "material", "flavor",
               "platform", "venue", "instructor", "artist", "director", "breed", "cuisine", "origin",
               "sponsor", "vendor", "designer", "composer", "captain", "editor", "supplier", "mascot")
INT_KEYS = ("age", "count", "year", "quantity", "rating", "score", "pages", "population", "capacity",
            "duration_min", "floors", "seats", "stock", "rank", "level", "weight_g", "height_cm",
            "followers", "episodes", "calories", "tracks", "players", "rooms", "wins", "employees",
            "chapters", "members", "visitors", "laps", "votes", "downloads", "reviews")
BOOL_KEYS = ("active", "available", "verified", "published", "archived", "enabled", "in_stock",
             "featured", "public", "completed", "discounted", "vegetarian", "remote", "refundable",
             "sold_out", "subscribed", "pinned", "wireless", "organic", "waterproof", "certified",
             "accessible", "seasonal", "sponsored")
NUM_KEYS = ("price", "average_rating", "latitude", "longitude", "temperature", "weight_kg",
            "distance_km", "budget", "balance", "discount_rate", "area_m2", "speed_kmh", "volume_l",
            "elevation_m", "tax_rate", "fuel_l")

APP_TYPES = ("web server", "chat bot", "mobile app", "data pipeline", "game server", "mail relay",
             "search service", "payment gateway", "photo gallery", "IoT hub", "blog engine",
             "video transcoder", "analytics dashboard", "print service", "VPN gateway", "wiki")
SECTION_KEYS = ("server", "database", "logging", "cache", "auth", "storage", "network", "metrics",
                "queue", "scheduler", "email", "security")

# (parent, plural child key) pairs: "a team with a list of 3 players"
SUB_ENTITIES = (("team", "players"), ("school", "students"), ("library", "books"), ("album", "tracks"),
                ("course", "lessons"), ("store", "products"), ("zoo", "animals"), ("hospital", "doctors"),
                ("playlist", "songs"), ("fleet", "vehicles"), ("orchestra", "musicians"),
                ("farm", "fields"), ("museum", "exhibits"), ("airline", "flights"), ("bakery", "cakes"),
                ("conference", "talks"))

# four level names per hierarchy, top to bottom
HIERARCHIES = (("company", "division", "department", "team"), ("country", "region", "city", "district"),
               ("university", "faculty", "department", "course"), ("kingdom", "phylum", "class", "order"),
               ("galaxy", "star system", "planet", "moon"), ("library", "floor", "shelf", "book"),
               ("album", "disc", "side", "track"), ("army", "brigade", "battalion", "company"),
               ("project", "epic", "story", "task"), ("store", "aisle", "shelf", "bin"),
               ("hospital", "wing", "ward", "bed"), ("book", "part", "chapter", "section"))

ABBREVIATION_DOMAINS = {
    "computing": (("CPU", "Central Processing Unit"), ("RAM", "Random Access Memory"), ("GPU", "Graphics Processing Unit"),
                  ("SSD", "Solid State Drive"), ("DNS", "Domain Name System"), ("HTTP", "Hypertext Transfer Protocol")),
    "medicine": (("MRI", "Magnetic Resonance Imaging"), ("ECG", "Electrocardiogram"), ("ICU", "Intensive Care Unit"),
                 ("BMI", "Body Mass Index"), ("CPR", "Cardiopulmonary Resuscitation"), ("DNA", "Deoxyribonucleic Acid")),
    "finance": (("ROI", "Return On Investment"), ("IPO", "Initial Public Offering"), ("ETF", "Exchange Traded Fund"),
                ("APR", "Annual Percentage Rate"), ("GDP", "Gross Domestic Product"), ("CFO", "Chief Financial Officer")),
    "aviation": (("ATC", "Air Traffic Control"), ("ETA", "Estimated Time of Arrival"), ("VFR", "Visual Flight Rules"),
                 ("IFR", "Instrument Flight Rules"), ("FAA", "Federal Aviation Administration"), ("ILS", "Instrument Landing System")),
    "networking": (("LAN", "Local Area Network"), ("WAN", "Wide Area Network"), ("VPN", "Virtual Private Network"),
                   ("TCP", "Transmission Control Protocol"), ("UDP", "User Datagram Protocol"), ("NAT", "Network Address Translation")),
    "space science": (("NASA", "National Aeronautics and Space Administration"), ("ISS", "International Space Station"),
                      ("EVA", "Extravehicular Activity"), ("LEO", "Low Earth Orbit"), ("ESA", "European Space Agency"),
                      ("AU", "Astronomical Unit")),
    "education": (("GPA", "Grade Point Average"), ("PHD", "Doctor of Philosophy"), ("MOOC", "Massive Open Online Course"),
                  ("STEM", "Science Technology Engineering Mathematics"), ("TA", "Teaching Assistant"), ("ESL", "English as a Second Language")),
    "web development": (("HTML", "Hypertext Markup Language"), ("CSS", "Cascading Style Sheets"), ("URL", "Uniform Resource Locator"),
                        ("API", "Application Programming Interface"), ("JSON", "JavaScript Object Notation"), ("CORS", "Cross Origin Resource Sharing")),
}

DOMAINS = ("e-commerce", "healthcare", "logistics", "banking", "education", "travel", "gaming",
           "real estate", "social media", "energy", "agriculture", "insurance")


def in_split(index: int, split: str) -> bool:
    return (index % 4 == 3) == (split == "eval")


def split_pool(values: Sequence, split: str) -> tuple:
    return tuple(v for i, v in enumerate(values) if in_split(i, split))


class Pools:
    """Every pool of this module restricted to one split, plus split-aware random draws."""

    def __init__(self, split: str):
        if split not in ("train", "eval"):
            raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
        self.split = split
        self.entities = split_pool(ENTITIES, split)
        self.topics = split_pool(tuple(TOPICS), split)
        self.string_keys = split_pool(STRING_KEYS, split)
        self.int_keys = split_pool(INT_KEYS, split)
        self.bool_keys = split_pool(BOOL_KEYS, split)
        self.num_keys = split_pool(NUM_KEYS, split)
        self.app_types = split_pool(APP_TYPES, split)
        self.section_keys = split_pool(SECTION_KEYS, split)
        self.sub_entities = split_pool(SUB_ENTITIES, split)
        self.hierarchies = split_pool(HIERARCHIES, split)
        self.abbreviation_domains = split_pool(tuple(ABBREVIATION_DOMAINS), split)
        self.domains = split_pool(DOMAINS, split)

    def count(self, rng: random.Random, lo: int, hi: int) -> int:
        """A count in [lo, hi] from this split's share (needs hi > lo so both splits get one)."""
        values = [v for v in range(lo, hi + 1) if in_split(v - lo + 2, self.split)]
        return rng.choice(values)
