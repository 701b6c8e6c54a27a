"""A deterministic synthetic dataset of realistic European companies, for the demo, tests and benchmarks.

The real company database is private, yet the demo needs something believable to show, the tests need rows
shaped like real data, and the benchmarks need 10,000+ companies whose near-duplicates are *known*, so the
dedup sweep can be scored against ground truth.  This module builds that dataset from fixed tables:

* European-leaning SMEs and some larger firms across ~30 industries, each with its real NACE Rev. 2 code;
* names in the style of their country (surnames, places, local trade words, coined brands) with the matching
  legal suffix, and websites derived from the name (``https://www.vandenberg-logistics.nl``);
* one- or two-sentence activity descriptions assembled from several phrase pools (products, customers,
  region, founding year, headcount, ownership) so that no two read alike;
* about ``duplicate_fraction`` near-duplicates of earlier companies (legal suffix dropped or changed, ``&``
  vs ``and``, different casing, ``www.`` dropped, ``http`` vs ``https``, lightly reworded description),
  each pointing at its original through ``duplicate_of``.  These variations keep the project's MiniLM
  embedding at cosine >= 0.95, so a dedup sweep at that threshold should find them; a share
  (``NAME_TYPO_SHARE``) instead carries a typo in the name, the realistic hard case such a sweep misses.

Everything is drawn from one seeded ``random.Random`` over ordered tuples (never ``hash()`` or set
iteration), so the same ``(n, seed)`` gives the same list in every process and Python run.  Stdlib only (no
Faker), and quick: 10,000 companies take roughly 0.1-0.3 s of CPU.
"""

from __future__ import annotations

import random
import re
import unicodedata
from bisect import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from itertools import accumulate
from typing import Any, Generic, TypeVar

from sqlalchemy import insert
from sqlalchemy.orm import Session

from core.dedup_keys import keys_of
from core.schema import Company, CompanyStatus

__all__ = ["NACE_CODES", "OWNERSHIP_TYPES", "SyntheticCompany", "generate_companies", "seed_companies"]

T = TypeVar("T")

OWNERSHIP_TYPES: tuple[str | None, ...] = (
    "family-owned",
    "private equity",
    "publicly listed",
    "founder-led",
    "cooperative",
    "subsidiary",
    None,
)

# The similarity a near-duplicate's (casefolded) name keeps to its original's: close enough for a dedup sweep.
MIN_DUPLICATE_NAME_RATIO = 0.8

# The share of near-duplicates whose name carries a typo: the realistic hard case.  A one-letter slip in a
# name changes its word pieces, so the MiniLM embedding usually lands below cosine 0.95 (median ~0.9); every
# other variation here was measured to stay at or above it.
NAME_TYPO_SHARE = 0.125

SEED_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SyntheticCompany:
    name: str
    website: str
    industry: str
    nace_code: str
    country: str
    activity_description: str
    ownership_type: str | None
    priority: int
    duplicate_of: int | None  # index (0-based, in the generated list) of the company this one near-duplicates


# ----------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------


class _Rng(random.Random):
    """``random.Random`` with float-based picks.

    Just as deterministic (the same seed gives the same picks on every run and platform) and several times
    faster than the stdlib's bit-exact rejection sampling, whose perfect uniformity nothing here needs.
    """

    def choice(self, seq: Sequence[T]) -> T:  # type: ignore[override]
        return seq[int(self.random() * len(seq))]

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        if step != 1 or stop <= start:
            return super().randrange(start, stop, step)
        return start + int(self.random() * (stop - start))


class _Weighted(Generic[T]):
    """A fixed weighted choice (cumulative weights computed once)."""

    __slots__ = ("items", "cum", "total", "last")

    def __init__(self, pairs: Sequence[tuple[T, float]]) -> None:
        self.items: tuple[T, ...] = tuple(item for item, _ in pairs)
        self.cum: tuple[float, ...] = tuple(accumulate(float(weight) for _, weight in pairs))
        self.total = self.cum[-1]
        self.last = len(self.items) - 1

    def pick(self, rng: random.Random) -> T:
        # What ``rng.choices(items, cum_weights=cum)`` does, without its per-call overhead.
        return self.items[bisect(self.cum, rng.random() * self.total, 0, self.last)]


@dataclass(frozen=True, slots=True)
class _Country:
    code: str
    name: str
    tld: str
    weight: float
    and_word: str
    surnames: tuple[str, ...]
    places: tuple[str, ...]
    cities: tuple[str, ...]
    regions: tuple[str, ...]
    suffixes: _Weighted[str]
    large_suffixes: _Weighted[str]
    listed_suffix: str
    exchange: str


def _w(*pairs: tuple[str, float]) -> _Weighted[str]:
    return _Weighted(pairs)


# fmt: off
_COUNTRIES: tuple[_Country, ...] = (
    _Country(
        code="NL",
        name="Netherlands",
        tld="nl",
        weight=18,
        and_word="en",
        surnames=(
            "Jansen", "De Vries", "Van den Berg", "Bakker", "Visser", "Smit", "Meijer", "De Boer", "Mulder",
            "De Groot", "Bos", "Vos", "Peters", "Hendriks", "Van Leeuwen", "Dekker", "Brouwer", "De Wit",
            "Dijkstra", "Smits", "De Graaf", "Van der Meer", "Van Dijk", "Kok", "Verhoeven", "Van der Linden",
            "Kuipers", "Schouten", "Willemsen", "Postma",
        ),
        places=(
            "Noord", "Delta", "Polder", "Oranje", "Zeeland", "IJssel", "Maas", "Rijn", "Holland", "Veluwe",
        ),
        cities=(
            "Amsterdam", "Rotterdam", "Utrecht", "Eindhoven", "Groningen", "Tilburg", "Breda", "Nijmegen",
            "Zwolle", "Arnhem", "Delft", "Leiden", "Haarlem", "Venlo", "Almere",
        ),
        regions=(
            "in the Randstad", "across the Netherlands", "throughout the Benelux",
            "in the north of the Netherlands", "in Brabant and Limburg",
        ),
        suffixes=_w(("B.V.", 92), ("V.O.F.", 8)),
        large_suffixes=_w(("B.V.", 55), ("N.V.", 45)),
        listed_suffix="N.V.",
        exchange="Euronext Amsterdam",
    ),
    _Country(
        code="BE",
        name="Belgium",
        tld="be",
        weight=12,
        and_word="en",
        surnames=(
            "Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens", "Wouters",
            "De Smet", "Dubois", "Lambert", "Dupont", "Vermeulen", "Van Damme", "Hermans", "Martens",
            "Declercq", "Leclercq", "Lejeune", "Verstraete", "Michiels", "Cools", "Segers", "Van Acker",
        ),
        places=(
            "Schelde", "Ardenne", "Kempen", "Brabant", "Flandria", "Mosa", "Leie", "Meetjesland",
            "Haspengouw",
        ),
        cities=(
            "Antwerpen", "Gent", "Brugge", "Leuven", "Liège", "Namur", "Mechelen", "Hasselt", "Kortrijk",
            "Brussel", "Aalst", "Charleroi",
        ),
        regions=(
            "in Flanders", "across Belgium and Luxembourg", "throughout the Benelux", "in Wallonia",
            "in the Brussels region",
        ),
        suffixes=_w(("BV", 55), ("BVBA", 20), ("SRL", 18), ("VOF", 7)),
        large_suffixes=_w(("NV", 70), ("SA", 30)),
        listed_suffix="NV",
        exchange="Euronext Brussels",
    ),
    _Country(
        code="DE",
        name="Germany",
        tld="de",
        weight=16,
        and_word="und",
        surnames=(
            "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
            "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
            "Schwarz", "Zimmermann", "Braun", "Krüger", "Hartmann", "Lange", "Werner", "Krause", "Lehmann",
            "Vogel",
        ),
        places=(
            "Rhein", "Nord", "Elbe", "Alpen", "Main", "Weser", "Harz", "Spree", "Hanse", "Donau", "Taunus",
        ),
        cities=(
            "Berlin", "Hamburg", "München", "Köln", "Frankfurt", "Stuttgart", "Düsseldorf", "Leipzig",
            "Dortmund", "Bremen", "Hannover", "Nürnberg", "Dresden", "Bielefeld", "Freiburg",
        ),
        regions=(
            "in southern Germany", "across the DACH region", "in North Rhine-Westphalia",
            "in Bavaria and Baden-Württemberg", "throughout Germany",
        ),
        suffixes=_w(("GmbH", 80), ("GmbH & Co. KG", 12), ("KG", 4), ("UG", 4)),
        large_suffixes=_w(("AG", 35), ("GmbH", 40), ("SE", 5), ("GmbH & Co. KG", 20)),
        listed_suffix="AG",
        exchange="the Frankfurt Stock Exchange",
    ),
    _Country(
        code="FR",
        name="France",
        tld="fr",
        weight=12,
        and_word="et",
        surnames=(
            "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
            "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Fournier", "Girard", "Bonnet", "Dupont",
            "Lambert", "Fontaine", "Rousseau", "Vincent", "Faure", "Blanc", "Chevalier", "Morel", "Gauthier",
        ),
        places=(
            "Atlantique", "Provence", "Alpes", "Loire", "Bretagne", "Garonne", "Seine", "Rhône", "Normandie",
            "Jura",
        ),
        cities=(
            "Paris", "Lyon", "Marseille", "Toulouse", "Nantes", "Lille", "Bordeaux", "Strasbourg", "Rennes",
            "Grenoble", "Montpellier", "Reims", "Angers", "Dijon",
        ),
        regions=(
            "in Île-de-France", "across France", "in the Auvergne-Rhône-Alpes region", "in western France",
            "in France and the Benelux",
        ),
        suffixes=_w(("SAS", 60), ("SARL", 35), ("EURL", 5)),
        large_suffixes=_w(("SA", 60), ("SAS", 40)),
        listed_suffix="SA",
        exchange="Euronext Paris",
    ),
    _Country(
        code="GB",
        name="United Kingdom",
        tld="co.uk",
        weight=12,
        and_word="and",
        surnames=(
            "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson",
            "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson",
            "Clarke", "Hughes", "Harrison", "Cooper", "Ward", "Turner", "Fletcher", "Parker", "Marsh",
        ),
        places=(
            "Thames", "Pennine", "Albion", "Cotswold", "Mersey", "Severn", "Northern", "Highland", "Wessex",
            "Tyne",
        ),
        cities=(
            "London", "Manchester", "Birmingham", "Leeds", "Bristol", "Glasgow", "Edinburgh", "Sheffield",
            "Liverpool", "Nottingham", "Cardiff", "Newcastle", "Leicester", "Southampton",
        ),
        regions=(
            "across the UK", "in the Midlands", "in London and the South East", "in the North of England",
            "in Scotland",
        ),
        suffixes=_w(("Ltd", 80), ("Limited", 20)),
        large_suffixes=_w(("Ltd", 40), ("Limited", 20), ("PLC", 40)),
        listed_suffix="PLC",
        exchange="the London Stock Exchange",
    ),
    _Country(
        code="ES",
        name="Spain",
        tld="es",
        weight=6,
        and_word="y",
        surnames=(
            "García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez", "Gómez",
            "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Álvarez", "Romero", "Navarro",
            "Torres", "Domínguez", "Vázquez", "Serrano", "Castillo", "Ortega",
        ),
        places=(
            "Ibérica", "Levante", "Cantábrico", "Mediterránea", "Castilla", "Ebro", "Sierra", "Atlántica",
        ),
        cities=(
            "Madrid", "Barcelona", "Valencia", "Sevilla", "Zaragoza", "Málaga", "Bilbao", "Murcia",
            "Valladolid", "Vigo", "Alicante", "Granada",
        ),
        regions=(
            "across Spain", "in Catalonia", "in the Madrid region", "in Spain and Portugal", "in Andalusia",
        ),
        suffixes=_w(("S.L.", 85), ("S.L.U.", 15)),
        large_suffixes=_w(
            ("S.A.", 100),
        ),
        listed_suffix="S.A.",
        exchange="the Madrid Stock Exchange",
    ),
    _Country(
        code="IT",
        name="Italy",
        tld="it",
        weight=6,
        and_word="e",
        surnames=(
            "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino",
            "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo",
            "Lombardi", "Moretti", "Barbieri", "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso",
        ),
        places=(
            "Adriatica", "Alpina", "Tirrena", "Padana", "Lombarda", "Toscana", "Etna", "Dolomiti", "Italica",
        ),
        cities=(
            "Milano", "Roma", "Torino", "Bologna", "Firenze", "Napoli", "Verona", "Padova", "Genova",
            "Bergamo", "Brescia", "Modena",
        ),
        regions=(
            "in northern Italy", "across Italy", "in Lombardy and Veneto", "in Emilia-Romagna",
            "in central Italy",
        ),
        suffixes=_w(("S.r.l.", 85), ("S.n.c.", 8), ("S.a.s.", 7)),
        large_suffixes=_w(
            ("S.p.A.", 100),
        ),
        listed_suffix="S.p.A.",
        exchange="Borsa Italiana",
    ),
    _Country(
        code="PL",
        name="Poland",
        tld="pl",
        weight=5,
        and_word="i",
        surnames=(
            "Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk", "Kamiński", "Lewandowski", "Zieliński",
            "Szymański", "Woźniak", "Dąbrowski", "Kozłowski", "Jankowski", "Mazur", "Kwiatkowski", "Krawczyk",
            "Piotrowski", "Grabowski", "Pawłowski", "Michalski", "Adamczyk",
        ),
        places=("Wisła", "Mazowsze", "Bałtyk", "Tatry", "Odra", "Polonia", "Pomorze", "Śląsk", "Warta"),
        cities=(
            "Warszawa", "Kraków", "Wrocław", "Poznań", "Gdańsk", "Łódź", "Katowice", "Lublin", "Szczecin",
            "Bydgoszcz", "Rzeszów",
        ),
        regions=(
            "across Poland", "in Central and Eastern Europe", "in Silesia", "in the Mazovia region",
            "in Poland and the Baltic states",
        ),
        suffixes=_w(("Sp. z o.o.", 90), ("Sp.j.", 10)),
        large_suffixes=_w(("S.A.", 60), ("Sp. z o.o.", 40)),
        listed_suffix="S.A.",
        exchange="the Warsaw Stock Exchange",
    ),
    _Country(
        code="SE",
        name="Sweden",
        tld="se",
        weight=4,
        and_word="och",
        surnames=(
            "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson", "Persson",
            "Svensson", "Gustafsson", "Pettersson", "Jonsson", "Hansson", "Bengtsson", "Lindberg",
            "Lindqvist", "Lundgren", "Berglund", "Sjöberg", "Holm", "Ekström", "Åkesson",
        ),
        places=("Norr", "Sund", "Fjäll", "Skog", "Kust", "Göta", "Vänern", "Mälar", "Norrland"),
        cities=(
            "Stockholm", "Göteborg", "Malmö", "Uppsala", "Västerås", "Örebro", "Linköping", "Helsingborg",
            "Jönköping", "Umeå",
        ),
        regions=(
            "across Sweden", "in the Nordics", "in the Stockholm region", "in western Sweden",
            "in Scandinavia",
        ),
        suffixes=_w(
            ("AB", 100),
        ),
        large_suffixes=_w(
            ("AB", 100),
        ),
        listed_suffix="AB (publ)",
        exchange="Nasdaq Stockholm",
    ),
    _Country(
        code="DK",
        name="Denmark",
        tld="dk",
        weight=3,
        and_word="og",
        surnames=(
            "Nielsen", "Jensen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
            "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Poulsen",
            "Johansen", "Møller", "Mortensen", "Lund",
        ),
        places=("Nord", "Fyn", "Jylland", "Sjælland", "Øresund", "Skagen", "Limfjord", "Vest", "Dania"),
        cities=(
            "København", "Aarhus", "Odense", "Aalborg", "Esbjerg", "Randers", "Kolding", "Horsens", "Vejle",
            "Roskilde",
        ),
        regions=(
            "across Denmark", "in the Nordics", "in Jutland", "in the Copenhagen area",
            "in Denmark and northern Germany",
        ),
        suffixes=_w(("ApS", 75), ("A/S", 25)),
        large_suffixes=_w(
            ("A/S", 100),
        ),
        listed_suffix="A/S",
        exchange="Nasdaq Copenhagen",
    ),
    _Country(
        code="IE",
        name="Ireland",
        tld="ie",
        weight=3,
        and_word="and",
        surnames=(
            "Murphy", "Kelly", "O'Sullivan", "Walsh", "O'Brien", "Byrne", "Ryan", "O'Connor", "O'Neill",
            "Reilly", "Doyle", "McCarthy", "Gallagher", "Doherty", "Kennedy", "Lynch", "Murray", "Quinn",
            "McLoughlin", "Carroll", "Brennan", "Fitzgerald",
        ),
        places=(
            "Shannon", "Liffey", "Atlantic", "Emerald", "Celtic", "Boyne", "Munster", "Leinster", "Wicklow",
        ),
        cities=(
            "Dublin", "Cork", "Galway", "Limerick", "Waterford", "Kilkenny", "Sligo", "Athlone", "Drogheda",
            "Dundalk",
        ),
        regions=(
            "across Ireland", "in Ireland and the UK", "in the Dublin area", "in Munster",
            "in the west of Ireland",
        ),
        suffixes=_w(("Ltd", 65), ("Limited", 30), ("DAC", 5)),
        large_suffixes=_w(("DAC", 30), ("Limited", 40), ("PLC", 30)),
        listed_suffix="PLC",
        exchange="Euronext Dublin",
    ),
    _Country(
        code="AT",
        name="Austria",
        tld="at",
        weight=3,
        and_word="und",
        surnames=(
            "Gruber", "Huber", "Bauer", "Wagner", "Pichler", "Steiner", "Moser", "Mayer", "Hofer", "Leitner",
            "Berger", "Fuchs", "Eder", "Fischer", "Schmid", "Winkler", "Weber", "Maier", "Reiter", "Mayr",
            "Wimmer", "Egger",
        ),
        places=("Donau", "Alpen", "Tirol", "Salzach", "Steiermark", "Kärnten", "Ost", "Wachau", "Enns"),
        cities=(
            "Wien", "Graz", "Linz", "Salzburg", "Innsbruck", "Klagenfurt", "Villach", "Wels", "Dornbirn",
            "Steyr",
        ),
        regions=(
            "across Austria", "in the DACH region", "in Vienna and Lower Austria", "in Tyrol",
            "in Austria and southern Germany",
        ),
        suffixes=_w(("GmbH", 88), ("KG", 6), ("OG", 6)),
        large_suffixes=_w(("AG", 40), ("GmbH", 60)),
        listed_suffix="AG",
        exchange="the Vienna Stock Exchange",
    ),
)
# fmt: on

_COUNTRY_CHOICE: _Weighted[_Country] = _Weighted([(c, c.weight) for c in _COUNTRIES])

_SIZES = ("micro", "small", "medium", "large")
_SIZE_PROFILES: Mapping[str, _Weighted[str]] = {
    "local": _Weighted(list(zip(_SIZES, (55, 35, 9, 1), strict=True))),
    "sme": _Weighted(list(zip(_SIZES, (30, 45, 20, 5), strict=True))),
    "industrial": _Weighted(list(zip(_SIZES, (10, 40, 38, 12), strict=True))),
    "large": _Weighted(list(zip(_SIZES, (5, 20, 35, 40), strict=True))),
}


@dataclass(frozen=True, slots=True)
class _Industry:
    label: str
    nace_code: str
    weight: float
    size_profile: str
    words: tuple[str, ...]  # English trade words for "{s} {w}" style names
    kinds: tuple[str, ...]  # what the company is ("road haulier")
    verbs: tuple[str, ...]  # third-person verbs taking a product ("develops and operates")
    products: tuple[str, ...]
    customers: tuple[str, ...]
    founded: tuple[int, int]
    local: Mapping[str, tuple[str, ...]]  # country code -> local name templates ({s} surname, {c} city, {p} place)
    pair: bool = False  # professional firms named after partners ("Janssens & Peeters")
    tech: bool = False  # favours coined brand names ("Norvia Software")
    cooperative: bool = False  # cooperatives are common here


def _local(**by_country: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Local name templates; DE templates also serve Austria and GB ones Ireland unless given."""
    out = dict(by_country)
    if "DE" in out:
        out.setdefault("AT", out["DE"])
    if "GB" in out:
        out.setdefault("IE", out["GB"])
    return out


# fmt: off
_INDUSTRIES: tuple[_Industry, ...] = (
    _Industry(
        label="Vegetable farming",
        nace_code="01.13",
        weight=2,
        size_profile="local",
        words=("Farms", "Growers", "Produce", "Horticulture", "Greenhouses"),
        kinds=("vegetable grower", "greenhouse horticulture business", "family farm"),
        verbs=("grows", "cultivates and packs", "produces"),
        products=(
            "greenhouse tomatoes and sweet peppers", "cucumbers and aubergines", "organic leafy vegetables",
            "onions, carrots and other root vegetables", "potatoes for the processing industry",
            "fresh herbs and lettuce", "asparagus and seasonal vegetables",
        ),
        customers=(
            "supermarket chains", "wholesale markets", "food processors", "grower cooperatives",
            "export traders",
        ),
        founded=(1890, 2015),
        local=_local(
            NL=("Kwekerij {s}", "{s} Tuinbouw", "{p} Groenten"),
            BE=("Kwekerij {s}", "{s} Groenten"),
            DE=("Gemüsebau {s}", "{s} Gartenbau"),
            ES=("Hortalizas {p}", "Agrícola {s}"),
            IT=("Azienda Agricola {s}",),
            PL=("Gospodarstwo Ogrodnicze {s}",),
        ),
        cooperative=True,
    ),
    _Industry(
        label="Bakery",
        nace_code="10.71",
        weight=3,
        size_profile="local",
        words=("Bakery", "Bakeries", "Bakehouse", "Patisserie"),
        kinds=("craft bakery", "industrial bakery", "family bakery"),
        verbs=("bakes", "produces", "makes"),
        products=(
            "artisan sourdough bread", "fresh bread and rolls", "pastries and celebration cakes",
            "frozen bake-off bread", "organic wholegrain loaves", "viennoiserie and croissants",
            "gluten-free breads",
        ),
        customers=(
            "its own chain of shops", "supermarkets", "hotels and restaurants", "local consumers",
            "foodservice wholesalers", "retail bakery franchises",
        ),
        founded=(1880, 2020),
        local=_local(
            NL=("Bakkerij {s}", "Warme Bakker {s}"),
            BE=("Bakkerij {s}", "Boulangerie {s}"),
            DE=("Bäckerei {s}", "Landbäckerei {s}", "Konditorei {s}"),
            FR=("Boulangerie {s}", "Pâtisserie {s}", "Maison {s}"),
            IT=("Panificio {s}", "Forno {s}"),
            ES=("Panadería {s}", "Horno {s}"),
            PL=("Piekarnia {s}",),
            SE=("{s} Bageri",),
            DK=("{s} Bageri", "Bageriet {c}"),
        ),
    ),
    _Industry(
        label="Dairy and cheese making",
        nace_code="10.51",
        weight=1.5,
        size_profile="industrial",
        words=("Dairy", "Dairies", "Cheese", "Creamery"),
        kinds=("dairy processor", "cheese maker", "dairy company"),
        verbs=("processes", "produces", "makes"),
        products=(
            "Gouda and farmhouse cheeses", "fresh milk, yoghurt and butter",
            "milk powder and whey ingredients", "organic dairy products", "speciality goat's cheese",
            "cream and dairy desserts",
        ),
        customers=(
            "retailers", "the foodservice sector", "food manufacturers",
            "export markets in Asia and the Middle East", "specialist cheese shops",
        ),
        founded=(1870, 2010),
        local=_local(
            NL=("Kaasmakerij {s}", "{p} Kaas", "Zuivelfabriek {p}"),
            FR=("Fromagerie {s}", "Laiterie {s}"),
            DE=("Molkerei {s}", "Käserei {s}"),
            IT=("Caseificio {s}",),
            DK=("{p} Mejeri",),
            SE=("{p} Mejeri",),
        ),
        cooperative=True,
    ),
    _Industry(
        label="Brewing",
        nace_code="11.05",
        weight=1.5,
        size_profile="sme",
        words=("Brewery", "Brewing", "Ales", "Beer Company"),
        kinds=("craft brewery", "independent brewery", "family brewery"),
        verbs=("brews", "produces", "brews and bottles"),
        products=(
            "abbey ales and lagers", "craft IPAs and seasonal beers", "pilsner and wheat beers",
            "low- and no-alcohol beers", "cask ales", "private-label beers",
        ),
        customers=(
            "pubs and bars", "supermarkets", "beer distributors", "export importers", "the hospitality trade",
        ),
        founded=(1850, 2021),
        local=_local(
            NL=("Brouwerij {s}", "Brouwerij {p}", "Stadsbrouwerij {c}"),
            BE=("Brouwerij {s}", "Brouwerij {p}", "Brasserie {s}"),
            DE=("Brauerei {s}", "Brauhaus {s}", "Privatbrauerei {s}"),
            FR=("Brasserie {s}", "Brasserie {p}"),
            IT=("Birrificio {p}",),
            ES=("Cervecera {p}",),
            PL=("Browar {p}",),
            SE=("{p} Bryggeri",),
            DK=("{p} Bryghus",),
            GB=("{p} Brewery", "{s}'s Brewery"),
        ),
    ),
    _Industry(
        label="Sawmilling and timber",
        nace_code="16.10",
        weight=1.5,
        size_profile="industrial",
        words=("Timber", "Sawmills", "Wood", "Lumber"),
        kinds=("sawmill", "timber processor", "wood products company"),
        verbs=("saws and planes", "processes", "produces"),
        products=(
            "spruce and pine sawn timber", "planed construction timber", "hardwood beams and boards",
            "FSC-certified softwood", "pallet wood and packaging timber", "glulam blanks",
        ),
        customers=(
            "builders' merchants", "construction companies", "furniture makers", "pallet manufacturers",
            "DIY chains",
        ),
        founded=(1860, 2010),
        local=_local(
            NL=("Houthandel {s}", "Zagerij {s}"),
            DE=("Sägewerk {s}", "Holzindustrie {s}", "{s} Holz"),
            FR=("Scierie {s}",),
            SE=("{p} Sågverk", "{s} Trä"),
            PL=("Tartak {s}",),
            IT=("Segheria {s}",),
        ),
    ),
    _Industry(
        label="Basic chemicals",
        nace_code="20.14",
        weight=1,
        size_profile="large",
        words=("Chemicals", "Chemical Industries", "Specialty Chemicals"),
        kinds=("chemical producer", "chemicals manufacturer"),
        verbs=("produces", "manufactures", "supplies"),
        products=(
            "bio-based solvents", "organic acids and esters", "methanol derivatives", "glycols and alcohols",
            "speciality intermediates", "ethylene oxide derivatives",
        ),
        customers=(
            "the pharmaceutical industry", "coatings and adhesives manufacturers",
            "the food and feed industry", "plastics converters", "agrochemical producers",
        ),
        founded=(1880, 2015),
        local=_local(
            DE=("{s} Chemie", "{p} Chemie"),
            NL=("{p} Chemie",),
            FR=("{s} Chimie",),
            IT=("{p} Chimica",),
            ES=("Química {p}",),
            PL=("Zakłady Chemiczne {p}",),
        ),
    ),
    _Industry(
        label="Pharmaceuticals",
        nace_code="21.20",
        weight=1,
        size_profile="large",
        words=("Pharma", "Pharmaceuticals", "Therapeutics", "Biopharma"),
        kinds=("pharmaceutical company", "generic drug manufacturer", "specialty pharma company"),
        verbs=("develops and manufactures", "produces", "markets"),
        products=(
            "generic oral medicines", "sterile injectables", "over-the-counter medicines",
            "oncology treatments", "orphan drugs for rare diseases", "veterinary medicines",
        ),
        customers=(
            "hospitals", "pharmacy wholesalers", "national health systems", "partner companies under licence",
        ),
        founded=(1900, 2018),
        local={},
        tech=True,
    ),
    _Industry(
        label="Plastic packaging",
        nace_code="22.22",
        weight=1.5,
        size_profile="industrial",
        words=("Packaging", "Plastics", "Pack"),
        kinds=("packaging manufacturer", "plastics converter"),
        verbs=("manufactures", "produces", "designs and produces"),
        products=(
            "PET bottles and preforms", "thermoformed food trays", "flexible films and pouches",
            "recycled-content packaging", "injection-moulded closures", "industrial containers and crates",
        ),
        customers=(
            "food and beverage brands", "the cosmetics industry", "retail private labels",
            "chemical companies", "logistics providers",
        ),
        founded=(1950, 2018),
        local=_local(
            DE=("{s} Verpackungen", "{p} Kunststoffe"),
            NL=("{p} Verpakkingen", "{s} Kunststoffen"),
            FR=("{p} Emballages",),
            IT=("{p} Imballaggi",),
            ES=("Envases {p}",),
            PL=("{p} Opakowania",),
        ),
    ),
    _Industry(
        label="Precision machining",
        nace_code="25.62",
        weight=3,
        size_profile="industrial",
        words=("Precision", "Machining", "Precision Engineering", "CNC", "Metalworks"),
        kinds=("precision machining company", "CNC machine shop", "contract manufacturer"),
        verbs=("machines", "produces", "manufactures"),
        products=(
            "high-precision turned and milled parts", "aluminium and stainless steel components",
            "small and medium series of machined parts", "prototype parts",
            "complex 5-axis milled components", "hydraulic and pneumatic components",
        ),
        customers=(
            "the semiconductor equipment industry", "machine builders", "the aerospace sector",
            "medical device manufacturers", "automotive suppliers", "the food processing industry",
        ),
        founded=(1920, 2020),
        local=_local(
            NL=("{s} Metaalbewerking", "{s} Precisietechniek"),
            DE=("{s} Präzisionstechnik", "{s} Zerspanungstechnik", "{s} CNC-Technik"),
            FR=("{s} Usinage", "Mécanique {s}"),
            IT=("Officina Meccanica {s}", "{s} Meccanica"),
            ES=("Mecanizados {s}",),
            PL=("Zakład Mechaniczny {s}",),
            SE=("{s} Mekaniska",),
            DK=("{s} Maskinfabrik",),
        ),
    ),
    _Industry(
        label="Lifting and handling equipment",
        nace_code="28.22",
        weight=1,
        size_profile="industrial",
        words=("Cranes", "Lifting", "Hoists", "Handling Systems", "Lifting Solutions"),
        kinds=("manufacturer of lifting equipment", "crane builder", "materials handling specialist"),
        verbs=("designs and builds", "manufactures", "supplies and services"),
        products=(
            "overhead travelling cranes", "electric chain hoists", "forklift attachments",
            "vacuum lifting devices", "loader cranes for trucks", "conveyor and handling systems",
        ),
        customers=(
            "the steel industry", "logistics centres", "ports and terminals", "manufacturing plants",
            "equipment rental companies",
        ),
        founded=(1900, 2015),
        local=_local(
            DE=("{s} Hebetechnik", "{s} Krantechnik", "{s} Fördertechnik"),
            NL=("{s} Hijstechniek", "{s} Kranen"),
            FR=("{s} Levage",),
            IT=("{s} Sollevamento",),
            SE=("{s} Lyftteknik",),
        ),
    ),
    _Industry(
        label="Automotive parts",
        nace_code="29.32",
        weight=1,
        size_profile="industrial",
        words=("Automotive", "Auto Parts", "Components", "Motion"),
        kinds=("automotive supplier", "tier-2 supplier"),
        verbs=("manufactures", "develops and produces", "supplies"),
        products=(
            "brake system components", "interior trim parts", "wire harnesses",
            "exhaust and emission components", "EV battery housings", "seat mechanisms",
        ),
        customers=(
            "car manufacturers", "tier-1 suppliers", "the commercial vehicle industry", "the aftermarket",
        ),
        founded=(1920, 2018),
        local=_local(
            DE=("{s} Fahrzeugteile", "{s} Automotive"), IT=("{s} Componenti",), ES=("Componentes {p}",)
        ),
    ),
    _Industry(
        label="Electricity production",
        nace_code="35.11",
        weight=1,
        size_profile="large",
        words=("Energy", "Power", "Renewables", "Wind", "Solar"),
        kinds=("independent power producer", "renewable energy company", "utility"),
        verbs=("develops and operates", "owns and operates", "builds and runs"),
        products=(
            "onshore wind farms", "solar parks", "biomass power plants", "run-of-river hydro plants",
            "combined heat and power plants", "battery storage systems",
        ),
        customers=(
            "the national grid", "corporate offtakers under long-term PPAs",
            "households and small businesses", "municipal utilities", "energy traders",
        ),
        founded=(1900, 2021),
        local=_local(
            NL=("{p} Energie", "{p} Wind"),
            DE=("{p} Energie", "Stadtwerke {c}"),
            FR=("{p} Énergies",),
            ES=("Energías {p}",),
            IT=("{p} Energia",),
            PL=("{p} Energia",),
            SE=("{p} Kraft", "{p} Energi"),
            DK=("{p} Energi", "{p} Vind"),
        ),
        cooperative=True,
    ),
    _Industry(
        label="Building construction",
        nace_code="41.20",
        weight=4,
        size_profile="sme",
        words=("Construction", "Builders", "Building", "Contractors"),
        kinds=("general contractor", "construction company", "building contractor"),
        verbs=("builds", "constructs", "designs and builds"),
        products=(
            "residential housing projects", "schools, offices and healthcare buildings", "timber-frame homes",
            "industrial halls and distribution centres", "renovation and energy-efficient retrofits",
            "apartment blocks",
        ),
        customers=(
            "housing associations", "private developers", "public authorities", "industrial clients",
            "private homeowners",
        ),
        founded=(1900, 2021),
        local=_local(
            NL=("Bouwbedrijf {s}", "{s} Bouw", "Aannemersbedrijf {s}"),
            BE=("Bouwonderneming {s}", "{s} Bouw", "Constructions {s}"),
            DE=("{s} Bau", "Bauunternehmung {s}", "{s} Hochbau"),
            FR=("Constructions {s}", "{s} Bâtiment"),
            IT=("{s} Costruzioni", "Edilizia {s}"),
            ES=("Construcciones {s}",),
            PL=("{s} Budownictwo", "Przedsiębiorstwo Budowlane {s}"),
            SE=("{s} Bygg",),
            DK=("{s} Byg", "{s} Entreprise"),
        ),
    ),
    _Industry(
        label="Plumbing and HVAC installation",
        nace_code="43.22",
        weight=3,
        size_profile="local",
        words=("Installations", "Climate Systems", "Heating", "Plumbing"),
        kinds=("installation company", "HVAC contractor", "plumbing and heating firm"),
        verbs=("installs and maintains", "designs and installs", "services"),
        products=(
            "heat pumps and underfloor heating", "ventilation and air-conditioning systems",
            "sanitary installations", "gas boilers and heating systems", "sprinkler systems",
            "building management systems",
        ),
        customers=(
            "homeowners", "housing associations", "commercial property owners", "main contractors",
            "hospitals and schools",
        ),
        founded=(1920, 2021),
        local=_local(
            NL=("Installatiebedrijf {s}", "{s} Installatietechniek"),
            BE=("{s} Installaties", "Chauffage {s}"),
            DE=("{s} Haustechnik", "Heizungsbau {s}"),
            FR=("{s} Chauffage", "{s} Climatisation"),
            IT=("{s} Impianti", "Termoidraulica {s}"),
            ES=("Instalaciones {s}",),
            PL=("{s} Instalacje",),
            SE=("{s} VVS", "{s} Rör"),
            DK=("{s} VVS",),
        ),
    ),
    _Industry(
        label="Wholesale trade",
        nace_code="46.90",
        weight=3,
        size_profile="sme",
        words=("Trading", "Wholesale", "Distribution", "Supplies"),
        kinds=("wholesaler", "trading company", "distributor"),
        verbs=("distributes", "imports and distributes", "supplies"),
        products=(
            "a broad range of household and hardware goods", "food and non-food products",
            "office and cleaning supplies", "consumer electronics and accessories", "garden and DIY products",
            "packaging materials and catering supplies",
        ),
        customers=(
            "independent retailers", "hotels, restaurants and caterers", "online shops",
            "institutional buyers", "convenience stores",
        ),
        founded=(1900, 2021),
        local=_local(
            NL=("{s} Groothandel", "Handelsonderneming {s}"),
            DE=("{s} Großhandel", "{s} Handelsgesellschaft"),
            FR=("{s} Distribution", "Comptoir {s}"),
            IT=("{s} Commerciale",),
            ES=("Distribuciones {s}", "Comercial {p}"),
            PL=("Hurtownia {s}",),
        ),
    ),
    _Industry(
        label="Supermarkets and grocery retail",
        nace_code="47.11",
        weight=2,
        size_profile="sme",
        words=("Supermarkets", "Foods", "Market", "Grocers", "Food Stores"),
        kinds=("grocery retailer", "supermarket chain", "independent supermarket"),
        verbs=("operates", "runs", "owns and operates"),
        products=(
            "neighbourhood supermarkets", "convenience stores at railway stations", "organic food stores",
            "discount food stores", "a franchise network of grocery shops",
            "an online grocery delivery service",
        ),
        customers=("local shoppers", "households", "commuters", "students and young families"),
        founded=(1900, 2021),
        local=_local(
            NL=("Supermarkt {s}", "{s} Supermarkten"),
            DE=("{s} Lebensmittelmarkt", "{s} Markt"),
            FR=("Épicerie {s}", "Supermarché {s}"),
            IT=("Supermercati {s}", "Alimentari {s}"),
            ES=("Supermercados {s}",),
            PL=("Delikatesy {s}",),
            SE=("{s} Livs",),
            DK=("{s} Købmand",),
        ),
        cooperative=True,
    ),
    _Industry(
        label="Road freight transport",
        nace_code="49.41",
        weight=4,
        size_profile="sme",
        words=("Logistics", "Transport", "Freight", "Haulage", "Trucking"),
        kinds=("road haulier", "transport company", "logistics provider"),
        verbs=("provides", "operates", "offers"),
        products=(
            "temperature-controlled road transport", "full and part truckload transport",
            "container haulage to and from seaports", "bulk transport of liquids",
            "express and same-day delivery", "international groupage services",
        ),
        customers=(
            "the food industry", "retail distribution centres", "chemical companies", "e-commerce shippers",
            "construction sites",
        ),
        founded=(1920, 2021),
        local=_local(
            NL=("Transportbedrijf {s}", "{s} Transport", "{s} Logistiek"),
            BE=("Transport {s}", "{s} Logistics"),
            DE=("Spedition {s}", "{s} Logistik", "{s} Transporte"),
            FR=("Transports {s}", "{s} Logistique"),
            IT=("Autotrasporti {s}", "{s} Trasporti"),
            ES=("Transportes {s}",),
            PL=("{s} Transport", "Przedsiębiorstwo Transportowe {s}"),
            SE=("{s} Åkeri",),
            DK=("{s} Vognmandsforretning", "{s} Transport"),
        ),
    ),
    _Industry(
        label="Warehousing and storage",
        nace_code="52.10",
        weight=2,
        size_profile="industrial",
        words=("Warehousing", "Storage", "Fulfilment", "Logistics Park"),
        kinds=("warehousing company", "third-party logistics provider", "contract logistics provider"),
        verbs=("operates", "runs", "provides"),
        products=(
            "bonded and temperature-controlled warehouses", "e-commerce fulfilment centres",
            "hazardous goods storage", "cross-dock facilities", "bulk storage silos",
            "value-added logistics services",
        ),
        customers=(
            "retailers and web shops", "chemical manufacturers", "importers and exporters",
            "consumer goods brands", "pharmaceutical companies",
        ),
        founded=(1930, 2021),
        local=_local(
            NL=("{s} Opslag", "{p} Warehousing"),
            DE=("{s} Lagerlogistik",),
            FR=("{s} Entreposage",),
            IT=("{s} Magazzini",),
            ES=("Almacenes {s}",),
            PL=("{s} Magazyny",),
        ),
    ),
    _Industry(
        label="Hotels",
        nace_code="55.10",
        weight=2,
        size_profile="sme",
        words=("Hotels", "Hotel", "Resorts", "Hospitality"),
        kinds=("hotel company", "hotel group", "boutique hotel operator"),
        verbs=("operates", "runs", "owns and operates"),
        products=(
            "a city-centre business hotel", "boutique hotels with conference facilities",
            "a spa and wellness resort", "budget hotels near airports", "a seaside hotel with restaurant",
            "serviced apartments",
        ),
        customers=("business travellers", "tourists", "conference organisers", "families", "tour operators"),
        founded=(1880, 2021),
        local=_local(
            NL=("Hotel {c}", "Hotel {s}", "Grand Hotel {c}"),
            BE=("Hotel {c}", "Hotel {s}"),
            DE=("Hotel {s}", "Gasthof {s}", "Landhotel {s}"),
            AT=("Hotel {s}", "Alpenhotel {s}", "Gasthof {s}"),
            FR=("Hôtel {s}", "Grand Hôtel {c}"),
            IT=("Albergo {s}", "Hotel {s}"),
            ES=("Hotel {s}", "Hostal {s}"),
            PL=("Hotel {s}",),
            GB=("The {c} Hotel", "{s} Hotels"),
        ),
    ),
    _Industry(
        label="Restaurants",
        nace_code="56.10",
        weight=3,
        size_profile="local",
        words=("Kitchen", "Dining", "Restaurants", "Catering"),
        kinds=("restaurant group", "restaurant company", "food service company"),
        verbs=("runs", "operates"),
        products=(
            "casual dining restaurants", "a fine-dining restaurant with seasonal menus",
            "fast-casual burger outlets", "pizzerias and takeaway kitchens", "a brasserie and event venue",
            "food trucks and festival catering",
        ),
        customers=(
            "local diners", "business lunches and events", "families", "tourists", "delivery customers",
        ),
        founded=(1920, 2022),
        local=_local(
            NL=("Restaurant {s}", "Eetcafé {p}", "Brasserie {c}"),
            BE=("Brasserie {s}", "Restaurant {s}"),
            DE=("Gasthaus {s}", "Restaurant {s}", "Wirtshaus {s}"),
            FR=("Brasserie {s}", "Bistrot {s}", "Restaurant {s}"),
            IT=("Trattoria {s}", "Osteria {s}", "Ristorante {s}"),
            ES=("Restaurante {s}", "Taberna {s}"),
            PL=("Restauracja {s}",),
            SE=("{s} Krog",),
            DK=("{s} Kro",),
            GB=("The {p} Kitchen", "{s} Dining"),
        ),
    ),
    _Industry(
        label="Software publishing",
        nace_code="58.29",
        weight=2.5,
        size_profile="sme",
        words=("Software", "Labs", "Cloud", "Apps", "Systems"),
        kinds=("software vendor", "SaaS company", "software publisher"),
        verbs=("develops and sells", "publishes", "builds"),
        products=(
            "ERP software", "cloud-based HR and payroll software", "warehouse management software",
            "CAD plugins", "practice management software", "accounting software", "cybersecurity tools",
        ),
        customers=(
            "small and medium-sized businesses", "accounting firms", "logistics companies",
            "healthcare providers", "manufacturers", "public sector organisations",
        ),
        founded=(1975, 2022),
        local={},
        tech=True,
    ),
    _Industry(
        label="Software development",
        nace_code="62.01",
        weight=5,
        size_profile="sme",
        words=("Software", "Digital", "IT", "Solutions", "Technologies", "Development"),
        kinds=("software development company", "IT services firm", "digital agency"),
        verbs=("builds", "develops", "designs and builds"),
        products=(
            "custom web and mobile applications", "bespoke business software",
            "data platforms and integrations", "e-commerce platforms", "embedded software",
            "AI and machine-learning solutions",
        ),
        customers=(
            "mid-sized companies", "start-ups and scale-ups", "financial institutions", "government agencies",
            "retailers", "industrial clients",
        ),
        founded=(1980, 2023),
        local={},
        tech=True,
    ),
    _Industry(
        label="Data processing and hosting",
        nace_code="63.11",
        weight=1.5,
        size_profile="sme",
        words=("Data", "Hosting", "Cloud", "Datacenters", "Networks"),
        kinds=("hosting provider", "data centre operator", "managed services provider"),
        verbs=("provides", "operates", "offers"),
        products=(
            "colocation and cloud hosting", "managed private cloud services",
            "data processing and backup services", "Tier III data centres",
            "GDPR-compliant European cloud storage", "managed Kubernetes platforms",
        ),
        customers=("SaaS companies", "SMEs", "enterprises", "public sector bodies", "web agencies"),
        founded=(1990, 2022),
        local={},
        tech=True,
    ),
    _Industry(
        label="Banking",
        nace_code="64.19",
        weight=0.7,
        size_profile="large",
        words=("Bank", "Capital", "Finance"),
        kinds=("bank", "private bank", "savings bank"),
        verbs=("provides", "offers"),
        products=(
            "savings accounts and mortgages", "business loans and payment services",
            "private banking and wealth management", "asset-based finance and leasing", "trade finance",
            "agricultural lending",
        ),
        customers=(
            "retail customers", "SMEs", "high-net-worth individuals", "farmers and agribusiness",
            "corporate clients",
        ),
        founded=(1850, 2020),
        local=_local(
            NL=("{p} Bank", "Bank {s}"),
            BE=("Banque {s}", "Bank {s}"),
            DE=("{p} Bank", "Bankhaus {s}", "Volksbank {c}", "Sparkasse {c}"),
            FR=("Banque {s}", "Crédit {p}"),
            IT=("Banca {p}", "Banca Popolare di {c}"),
            ES=("Banco {p}", "Caja Rural de {c}"),
            PL=("Bank {p}",),
            SE=("{p} Sparbank",),
            DK=("{p} Sparekasse", "{p} Bank"),
            GB=("{p} Bank",),
        ),
        cooperative=True,
    ),
    _Industry(
        label="Real estate",
        nace_code="68.20",
        weight=2,
        size_profile="sme",
        words=("Real Estate", "Properties", "Estates", "Property"),
        kinds=("property company", "real estate investor", "property manager"),
        verbs=("owns and lets", "manages", "develops and rents out"),
        products=(
            "residential apartments", "office buildings", "retail parks", "logistics real estate",
            "student housing", "mixed-use city-centre properties",
        ),
        customers=(
            "private tenants", "corporate tenants", "retail chains", "institutional investors", "students",
        ),
        founded=(1900, 2022),
        local=_local(
            NL=("{s} Vastgoed", "{p} Vastgoed"),
            BE=("{s} Vastgoed", "{s} Immo"),
            DE=("{s} Immobilien", "{p} Immobilien"),
            FR=("{s} Immobilier", "Foncière {s}"),
            IT=("{s} Immobiliare",),
            ES=("Inmobiliaria {s}",),
            PL=("{s} Nieruchomości",),
            SE=("{s} Fastigheter",),
            DK=("{s} Ejendomme",),
        ),
    ),
    _Industry(
        label="Accounting and tax advice",
        nace_code="69.20",
        weight=4,
        size_profile="local",
        words=("Accountants", "Accountancy", "Tax Advisers", "Audit", "Advisory"),
        kinds=("accounting firm", "audit and tax practice", "bookkeeping office"),
        verbs=("provides", "offers"),
        products=(
            "bookkeeping and annual accounts", "statutory audits", "tax returns and tax planning",
            "payroll administration", "corporate tax advice", "business valuations and succession planning",
        ),
        customers=(
            "SMEs", "entrepreneurs and freelancers", "family businesses", "non-profit organisations",
            "international companies with local subsidiaries", "farmers",
        ),
        founded=(1920, 2022),
        local=_local(
            NL=("{s} Accountants", "Administratiekantoor {s}", "{s} Belastingadviseurs"),
            BE=("Boekhoudkantoor {s}", "Fiduciaire {s}"),
            DE=("{s} Steuerberatung", "Kanzlei {s}", "{s} Wirtschaftsprüfung"),
            FR=("Cabinet {s}", "{s} Expertise Comptable"),
            IT=("Studio {s}", "Studio Commercialista {s}"),
            ES=("Asesoría {s}", "Gestoría {s}"),
            PL=("Biuro Rachunkowe {s}",),
            SE=("{s} Redovisning", "{s} Revision"),
            DK=("{s} Revision",),
        ),
        pair=True,
    ),
    _Industry(
        label="Management consultancy",
        nace_code="70.22",
        weight=4,
        size_profile="sme",
        words=("Consulting", "Consultancy", "Partners", "Advisory", "Management"),
        kinds=("management consultancy", "strategy consultancy", "business advisory firm"),
        verbs=("provides", "offers", "delivers"),
        products=(
            "strategy and organisational design advice", "operational excellence and lean programmes",
            "change management and interim management", "procurement and supply-chain consulting",
            "digital transformation advice", "due diligence for acquisitions",
        ),
        customers=(
            "mid-sized companies", "public sector organisations", "healthcare institutions",
            "private equity investors", "family businesses", "energy companies",
        ),
        founded=(1960, 2023),
        local={},
        pair=True,
        tech=True,
    ),
    _Industry(
        label="Engineering services",
        nace_code="71.12",
        weight=3,
        size_profile="sme",
        words=("Engineering", "Engineers", "Technical Consultants"),
        kinds=("engineering consultancy", "engineering firm", "technical consultancy"),
        verbs=("provides", "delivers", "offers"),
        products=(
            "structural engineering and design", "MEP engineering for buildings",
            "civil engineering for infrastructure projects", "process engineering for industrial plants",
            "geotechnical surveys", "energy and sustainability assessments",
        ),
        customers=(
            "architects", "contractors", "industrial plant owners", "municipalities",
            "infrastructure agencies", "property developers",
        ),
        founded=(1930, 2022),
        local=_local(
            NL=("Ingenieursbureau {s}", "{s} Engineering"),
            BE=("Studiebureau {s}", "Bureau d'Études {s}"),
            DE=("Ingenieurbüro {s}", "{s} Ingenieure"),
            FR=("Bureau d'Études {s}", "{s} Ingénierie"),
            IT=("Studio Tecnico {s}", "{s} Ingegneria"),
            ES=("{s} Ingeniería",),
            PL=("Biuro Projektowe {s}",),
            SE=("{s} Konsult",),
            DK=("{s} Rådgivende Ingeniører",),
        ),
        pair=True,
    ),
    _Industry(
        label="Research and experimental development",
        nace_code="72.19",
        weight=1.5,
        size_profile="sme",
        words=("Research", "Labs", "Innovations", "Technologies", "Sciences"),
        kinds=("contract research organisation", "research company", "R&D firm"),
        verbs=("carries out", "performs", "conducts"),
        products=(
            "contract research in materials science", "applied research on battery technology",
            "testing and prototyping of sensors", "research into hydrogen technologies",
            "photonics research and development", "feasibility studies and pilot plant trials",
        ),
        customers=(
            "industrial partners", "EU-funded consortia", "start-ups", "chemical companies",
            "universities and government programmes",
        ),
        founded=(1950, 2022),
        local={},
        tech=True,
    ),
    _Industry(
        label="Advertising",
        nace_code="73.11",
        weight=2.5,
        size_profile="sme",
        words=("Advertising", "Creative", "Communications", "Media", "Studio", "Agency"),
        kinds=("advertising agency", "creative agency", "full-service marketing agency"),
        verbs=("creates", "develops", "designs and runs"),
        products=(
            "advertising campaigns across TV, radio and online", "brand identities and packaging design",
            "social media and influencer campaigns", "performance marketing campaigns",
            "B2B content marketing", "out-of-home advertising",
        ),
        customers=(
            "consumer brands", "retailers", "B2B technology companies", "non-profit organisations",
            "tourism boards",
        ),
        founded=(1950, 2023),
        local=_local(
            NL=("Reclamebureau {s}",),
            DE=("{s} Werbeagentur", "Agentur {s}"),
            FR=("Agence {s}", "{s} Communication"),
            IT=("{s} Comunicazione",),
            ES=("{s} Publicidad",),
            PL=("Agencja Reklamowa {p}",),
            SE=("{s} Reklambyrå",),
            DK=("{s} Reklamebureau",),
        ),
        pair=True,
        tech=True,
    ),
    _Industry(
        label="Education and training",
        nace_code="85.59",
        weight=2,
        size_profile="local",
        words=("Academy", "Training", "Learning", "Institute", "Education"),
        kinds=("training provider", "private education institute", "language school"),
        verbs=("provides", "offers", "runs"),
        products=(
            "vocational training courses", "language courses", "IT certification programmes",
            "management and leadership training", "driving and safety training",
            "online courses and e-learning",
        ),
        customers=(
            "adult learners", "employers", "job seekers", "international students",
            "public employment services",
        ),
        founded=(1950, 2023),
        local=_local(
            NL=("{p} Opleidingen", "{s} Trainingen"),
            DE=("{p} Akademie", "Bildungszentrum {s}"),
            FR=("{p} Formation", "Institut {s}"),
            IT=("{p} Formazione", "Accademia {p}"),
            ES=("Academia {s}", "Formación {p}"),
            PL=("Szkoła Językowa {p}",),
            SE=("{p} Utbildning",),
            DK=("{p} Uddannelse",),
        ),
    ),
    _Industry(
        label="General medical practice",
        nace_code="86.21",
        weight=2.5,
        size_profile="local",
        words=("Medical Practice", "Medical Centre", "Health Centre", "Family Practice"),
        kinds=("general practice", "GP surgery", "group practice"),
        verbs=("provides", "offers"),
        products=(
            "primary care and general medical consultations", "chronic disease management",
            "vaccinations and preventive health checks", "minor surgery and wound care",
            "out-of-hours GP care", "paediatric and elderly care",
        ),
        customers=("registered patients", "local residents", "families", "elderly patients", "students"),
        founded=(1950, 2023),
        local=_local(
            NL=("Huisartsenpraktijk {s}", "Gezondheidscentrum {p}"),
            BE=("Huisartsenpraktijk {s}", "Groepspraktijk {p}", "Cabinet Médical {s}"),
            DE=("Praxis Dr. {s}", "Hausarztpraxis {s}", "Gemeinschaftspraxis {p}"),
            FR=("Cabinet Médical {s}", "Maison de Santé {p}"),
            IT=("Studio Medico {s}", "Poliambulatorio {p}"),
            ES=("Centro Médico {p}", "Consulta Dr. {s}"),
            PL=("Przychodnia {p}", "Gabinet Lekarski {s}"),
            SE=("{p} Vårdcentral", "{p} Läkarhus"),
            DK=("Lægehuset {p}", "{p} Lægepraksis"),
            GB=("{p} Medical Practice", "{p} Surgery", "{p} Family Practice"),
        ),
        pair=True,
    ),
)
# fmt: on

NACE_CODES: Mapping[str, str] = {ind.label: ind.nace_code for ind in _INDUSTRIES}
"""Every industry label the generator uses, with its NACE Rev. 2 code."""

_INDUSTRY_CHOICE: _Weighted[_Industry] = _Weighted([(ind, ind.weight) for ind in _INDUSTRIES])

# fmt: off
_COINED_HEADS = (
    "Alt",
    "Ava",
    "Bel",
    "Cor",
    "Del",
    "Eco",
    "Flex",
    "Gen",
    "Inno",
    "Lum",
    "Nex",
    "Nor",
    "Octa",
    "Pro",
    "Quan",
    "Sol",
    "Tri",
    "Ver",
    "Vita",
    "Zen",
    "Ster",
    "Cal",
    "Mar",
    "Aqu",
    "Terra",
    "Axi",
    "Bri",
    "Kor",
    "Lin",
    "Ori",
)
_COINED_TAILS = (
    "via",
    "tec",
    "ion",
    "ex",
    "ora",
    "is",
    "ant",
    "um",
    "ix",
    "ium",
    "a",
    "o",
    "ico",
    "ar",
    "en",
    "io",
    "ara",
    "eon",
    "ity",
    "us",
)
# fmt: on

_LARGE_TAGS = ("Group", "Holding", "International", "Europe")
_GENERIC_REGIONS = ("across Europe", "in Europe and North America", "in more than {k} countries")

_SIZE_ADJECTIVES: Mapping[str, tuple[str, ...]] = {
    "micro": ("small", "independent"),
    "small": ("independent", "regional", "growing"),
    "medium": ("mid-sized", "established", "well-established"),
    "large": ("leading", "international", "major"),
}
_OWNERSHIP_BY_SIZE: Mapping[str, tuple[float, ...]] = {
    # family-owned, private equity, publicly listed, founder-led, cooperative, subsidiary, None
    "micro": (28, 2, 0, 32, 1, 3, 34),
    "small": (30, 4, 0, 26, 2, 6, 32),
    "medium": (30, 18, 1, 12, 3, 15, 21),
    "large": (15, 17, 22, 3, 3, 26, 14),
}
_OWNERSHIP: Mapping[tuple[str, bool], _Weighted[str | None]] = {
    # cooperatives are common in farming, dairy, grocery retail, energy and banking, rare elsewhere
    (size, coop): _Weighted(
        [
            (o, w * ((6.0 if coop else 0.3) if o == "cooperative" else 1.0))
            for o, w in zip(OWNERSHIP_TYPES, weights, strict=True)
        ]
    )
    for size, weights in _OWNERSHIP_BY_SIZE.items()
    for coop in (False, True)
}
_EMPLOYEES: Mapping[str, tuple[int, int]] = {
    "micro": (2, 9),
    "small": (10, 49),
    "medium": (50, 249),
    "large": (250, 25_000),
}
_PRIORITY = _Weighted(list(zip(range(11), (30, 22, 15, 10, 7, 5, 4, 3, 2, 1, 1), strict=True)))
_COOPERATIVE_MEMBERS: Mapping[str, tuple[int, ...]] = {
    "micro": (7, 12, 25, 40),
    "small": (25, 40, 80, 150),
    "medium": (120, 350, 800, 1500),
    "large": (1500, 4000, 12000, 45000),
}
_ORDINALS = ("second", "third", "fourth", "fifth")
_CURRENT_YEAR = 2024

# Near-duplicate edits of legal suffixes, as people actually type them.  Only the mild ones: each was measured
# to keep the project's MiniLM embedding of the company at cosine >= 0.95 (rarer forms such as "SARL" ->
# "S.A.R.L.", "BVBA" -> "BV" or "S.r.l." -> "Srl" move the vector too far and are left out on purpose).
_SUFFIX_VARIANTS: Mapping[str, tuple[str, ...]] = {
    "B.V.": ("BV", "B.V", "bv"),
    "N.V.": ("NV", "N.V"),
    "BV": ("B.V.", "bv"),
    "NV": ("N.V.", "nv"),
    "SA": ("S.A.", "sa"),
    "GmbH": ("Gmbh", "GMBH"),
    "GmbH & Co. KG": ("GmbH & Co KG", "GmbH u. Co. KG"),
    "AG": ("A.G.", "Ag"),
    "SE": ("S.E.",),
    "SAS": ("Sas",),
    "SARL": ("Sàrl",),
    "Ltd": ("Ltd.", "Limited", "LTD"),
    "Limited": ("Ltd", "Ltd."),
    "PLC": ("plc",),
    "S.L.": ("S.L.U.",),
    "S.L.U.": ("S.L.",),
    "S.A.": ("SA", "S.A.U."),
    "S.r.l.": ("S.R.L.", "s.r.l."),
    "S.n.c.": ("S.N.C.",),
    "S.a.s.": ("S.A.S.",),
    "S.p.A.": ("S.P.A.",),
    "Sp. z o.o.": ("sp. z o.o.", "Sp.z o.o.", "Sp. z.o.o."),
    "Sp.j.": ("Sp. j.", "sp.j."),
    "AB": ("AB.",),
    "ApS": ("Aps", "APS"),
    "A/S": ("AS", "A/S."),
}
# Legal suffixes whose omission keeps that cosine >= 0.95 (dropping "SARL", "BVBA", "DAC"... does not).
_DROPPABLE_SUFFIXES = frozenset(
    {"B.V.", "N.V.", "NV", "GmbH", "AG", "SE", "Ltd", "Limited", "PLC", "S.A.", "SA", "S.L.", "S.L.U."}
    | {"S.r.l.", "S.n.c.", "S.a.s.", "S.p.A.", "Sp. z o.o.", "Sp.j.", "AB", "A/S", "UG"}
)
_REWORDINGS: tuple[tuple[str, str], ...] = (
    ("the company", "the firm"),
    ("employs around", "employs about"),
    ("to about", "to roughly"),
    ("Founded in", "Established in"),
    ("established in", "founded in"),
    ("based in", "headquartered in"),
    ("specialising in", "specializing in"),
    ("offering", "providing"),
    ("people", "staff"),
    ("employees", "staff"),
    (" and ", " & "),
    ("organisation", "organization"),
    ("customers", "clients"),
)

# ----------------------------------------------------------------------------------------------------
# Names and websites
# ----------------------------------------------------------------------------------------------------

_TRANSLIT = str.maketrans(
    {"ß": "ss", "ä": "ae", "ö": "oe", "ü": "ue", "æ": "ae", "ø": "oe", "å": "aa", "ł": "l", "œ": "oe"}
)
_TRANSLIT_NORDIC = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "æ": "ae", "ø": "o", "å": "a", "ł": "l"})
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=8192)
def _slug_unit(text: str, nordic: bool) -> str:
    """One name unit as a hostname fragment: ``Van den Berg`` -> ``vandenberg``, ``Müller`` -> ``mueller``."""
    lowered = text.lower().translate(_TRANSLIT_NORDIC if nordic else _TRANSLIT)
    ascii_text = unicodedata.normalize("NFKD", lowered).encode("ascii", "ignore").decode("ascii")
    return _NON_ALNUM.sub("", ascii_text)


@dataclass(frozen=True, slots=True)
class _Name:
    units: tuple[str, ...]  # the words of the name before the legal suffix; multi-word surnames are one unit
    connector: int | None  # index of the "&"/"and" unit, if any
    suffix: str

    def render(self) -> str:
        base = " ".join(self.units)
        return f"{base} {self.suffix}" if self.suffix else base

    def slug(self, nordic: bool) -> str:
        parts = (_slug_unit(u, nordic) for i, u in enumerate(self.units) if i != self.connector)
        return "-".join(p for p in parts if p)


def _coined(rng: random.Random) -> str:
    return rng.choice(_COINED_HEADS) + rng.choice(_COINED_TAILS)


_LOCAL = "local"
_PATTERNS: dict[tuple[str, str], _Weighted[str]] = {}


def _patterns(ind: _Industry, country: _Country) -> _Weighted[str]:
    """The name patterns open to an industry in a country (built once per pair)."""
    key = (ind.nace_code, country.code)
    table = _PATTERNS.get(key)
    if table is None:
        options: list[tuple[str, float]] = [
            ("{s} {w}", 30),
            ("{p} {w}", 10),
            ("{k} {w}", 35 if ind.tech else 12),
            ("{c} {w}", 5),
        ]
        if ind.tech:
            options.append(("{k}", 10))
        if ind.pair:
            options += [("{s} & {s2}", 8), ("{s} & {s2} {w}", 8)]
        if country.code in ind.local:
            # Trades people name the local way ("Bakkerij Jansen", "Praxis Dr. Huber") mostly do so.
            options.append((_LOCAL, 80 if ind.size_profile == "local" else 45))
        table = _PATTERNS[key] = _Weighted(options)
    return table


def _build_name(
    rng: random.Random, ind: _Industry, country: _Country, size: str, suffix: str
) -> tuple[_Name, str | None]:
    """A name, and the city it mentions (if any) so the description can agree with it."""
    template = _patterns(ind, country).pick(rng)
    local = template == _LOCAL
    if local:
        template = rng.choice(ind.local[country.code])
    units: list[str] = []
    connector: int | None = None
    city: str | None = None
    surname = rng.choice(country.surnames)
    for token in template.split():
        if token == "{s}":
            units.append(surname)
        elif token == "{s2}":
            other = rng.choice(country.surnames)
            while other == surname:
                other = rng.choice(country.surnames)
            units.append(other)
        elif token == "{c}":
            city = rng.choice(country.cities)
            units.append(city)
        elif token == "{p}":
            units.append(rng.choice(country.places))
        elif token == "{k}":
            units.append(_coined(rng))
        elif token == "{w}":
            units.extend(rng.choice(ind.words).split())
        elif token == "&":
            connector = len(units)
            units.append("&" if rng.random() < 0.8 else country.and_word)
        else:
            units.append(token)
    if size == "large" and not local and rng.random() < 0.35:
        units.append(rng.choice(_LARGE_TAGS))
    return _Name(tuple(units), connector, suffix), city


def _disambiguate(rng: random.Random, name: _Name, country: _Country, attempt: int) -> _Name:
    """A name still taken after many draws gets a city or a coined brand appended ("Jansen Bouw Delft")."""
    extra = rng.choice(country.cities) if attempt % 2 else _coined(rng)
    return _Name((*name.units, extra), name.connector, name.suffix)


# ----------------------------------------------------------------------------------------------------
# Descriptions
# ----------------------------------------------------------------------------------------------------


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _headcount(n: int) -> str:
    return f"{n:,}"


def _region(rng: random.Random, ind: _Industry, country: _Country, city: str, size: str) -> str:
    roll = rng.random()
    if ind.size_profile == "local" and size in ("micro", "small") and roll < 0.5:
        return rng.choice((f"in and around {city}", f"in the {city} area"))
    if roll < (0.55 if size == "large" else 0.15):
        return rng.choice(_GENERIC_REGIONS).format(k=rng.randint(5, 40))
    return rng.choice(country.regions)


def _both(first: str, second: str) -> str:
    """Two product phrases joined without an "X and Y and Z" pile-up."""
    joiner = ", as well as " if " and " in first or " and " in second else " and "
    return f"{first}{joiner}{second}"


def _first_sentence(
    rng: random.Random, ind: _Industry, country: _Country, city: str, size: str
) -> tuple[str, tuple[str, ...]]:
    """The activity sentence, and the products it mentions (so a second sentence does not repeat them)."""
    kind = rng.choice(ind.kinds)
    verb = rng.choice(ind.verbs)
    product, product2 = rng.sample(ind.products, 2)
    customer = rng.choice(ind.customers)
    region = _region(rng, ind, country, city, size)
    adjective = rng.choice(_SIZE_ADJECTIVES[size])
    a_kind = f"{_cap(_article(kind))} {kind}"
    form = rng.randrange(6)
    if form == 0:
        return f"{a_kind} based in {city} that {verb} {product} for {customer}.", (product,)
    if form == 1:
        return f"{_cap(verb)} {_both(product, product2)} for {customer} {region}.", (product, product2)
    if form == 2:
        return f"{a_kind} specialising in {product} for {customer} {region}.", (product,)
    if form == 3:
        return f"{city}-based {kind} offering {_both(product, product2)} to {customer}.", (product, product2)
    if form == 4:
        return f"{a_kind} serving {customer} {region} with {product}.", (product,)
    text = f"{_cap(_article(adjective))} {adjective} {kind} that {verb} {product} for {customer} {region}."
    return text, (product,)


def _second_sentence(
    rng: random.Random,
    ind: _Industry,
    country: _Country,
    size: str,
    ownership: str | None,
    founded: int,
    employees: int,
    mentioned: tuple[str, ...],
) -> str:
    staff = _headcount(employees)
    approx = "around " if employees >= 20 else ""
    age = _CURRENT_YEAR - founded
    if ownership == "family-owned" and age >= 40 and rng.random() < 0.6:
        generation = _ORDINALS[min(age // 30, len(_ORDINALS)) - 1]
        return f"Family-owned since {founded}, the company is now run by the {generation} generation."
    if ownership == "private equity" and rng.random() < 0.6:
        since = rng.randint(min(max(founded + 1, 2005), _CURRENT_YEAR), _CURRENT_YEAR)
        return f"Backed by private equity since {since}, it employs {approx}{staff} people."
    if ownership == "publicly listed" and rng.random() < 0.7:
        markets = rng.randint(3, 30)
        return f"Listed on {country.exchange}, the group employs some {staff} people in {markets} countries."
    if ownership == "cooperative" and rng.random() < 0.7:
        members = rng.choice(_COOPERATIVE_MEMBERS[size])
        return f"Organised as a cooperative of {members:,} members, it employs {approx}{staff} people."
    if ownership == "subsidiary" and rng.random() < 0.6:
        since = rng.randint(min(max(founded + 1, 1990), _CURRENT_YEAR), _CURRENT_YEAR)
        return f"Part of an international group since {since}, it employs {approx}{staff} people."
    form = rng.randrange(5)
    if form == 0:
        return f"Founded in {founded}, the company employs {approx}{staff} people."
    if form == 1:
        return f"The business was established in {founded} and has {staff} employees."
    if form == 2 and employees >= 10:
        return f"Since {founded} it has grown to about {staff} staff."
    if form == 3 and size in ("medium", "large"):
        sites = rng.randint(2, 12 if size == "large" else 5)
        return f"Around {staff} people work at its {sites} sites in {country.name}."
    extra = rng.choice([p for p in ind.products if p not in mentioned])
    return f"It also offers {extra} and was founded in {founded}."


# ----------------------------------------------------------------------------------------------------
# Near-duplicates
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Original:
    company: SyntheticCompany
    name: _Name
    and_word: str


def _typo(rng: random.Random, units: tuple[str, ...], connector: int | None) -> tuple[str, ...] | None:
    candidates = [i for i, u in enumerate(units) if i != connector and len(u) >= 4]
    if not candidates:
        return None
    i = rng.choice(candidates)
    word = units[i]
    # never the first letter (people rarely get that wrong) and never a space or apostrophe
    positions = [k for k in range(1, len(word) - 1) if word[k].isalpha()]
    if not positions:
        return None
    pos = rng.choice(positions)
    a, b = word[pos], word[pos + 1]
    op = rng.randrange(3)
    if op == 0 and a != b and a.isalpha() and b.isalpha():
        word = word[:pos] + b + a + word[pos + 2 :]
    elif op == 1 and a.isalpha():
        word = word[:pos] + word[pos + 1 :]
    else:
        word = word[:pos] + a + word[pos:]
    return (*units[:i], word, *units[i + 1 :])


def _vary_name(rng: random.Random, original: _Original) -> str:
    """The original's name with one variation: casing, legal suffix, "&" vs "and", or (rarely) a typo."""
    name = original.name
    units, suffix = name.units, name.suffix
    if rng.random() < NAME_TYPO_SHARE:
        units = _typo(rng, units, name.connector) or units
        return _Name(units, name.connector, suffix).render()
    options: list[tuple[str, float]] = [("casing", 30)]
    if suffix in _SUFFIX_VARIANTS:
        options.append(("suffix_change", 30))
    if suffix in _DROPPABLE_SUFFIXES:
        options.append(("suffix_drop", 25))
    if name.connector is not None:
        options.append(("connector", 25))
    variation = _Weighted(options).pick(rng)
    if variation == "casing":
        text = name.render()
        return text.upper() if rng.random() < 0.5 else text.lower()
    if variation == "suffix_change":
        suffix = rng.choice(_SUFFIX_VARIANTS[suffix])
    elif variation == "suffix_drop":
        suffix = ""
    else:
        i = name.connector
        assert i is not None
        units = (*units[:i], original.and_word if units[i] == "&" else "&", *units[i + 1 :])
    return _Name(units, name.connector, suffix).render()


def _similar(a: str, b: str) -> bool:
    return SequenceMatcher(None, a.casefold(), b.casefold()).ratio() > MIN_DUPLICATE_NAME_RATIO


def _vary_website(rng: random.Random, url: str) -> str:
    roll = rng.random()
    if roll < 0.45:
        return url
    if roll < 0.7:
        return url.replace("://www.", "://", 1)
    if roll < 0.85:
        return url.replace("https://", "http://", 1)
    return url + "/"


def _vary_description(rng: random.Random, text: str) -> str:
    if rng.random() < 0.25:
        return text
    present = [pair for pair in _REWORDINGS if pair[0] in text]
    if not present:
        return text.rstrip(".") if rng.random() < 0.5 else text
    for old, new in rng.sample(present, min(len(present), rng.randint(1, 2))):
        text = text.replace(old, new, 1)
    return text


def _near_duplicate(rng: random.Random, index: int, original: _Original, taken_names: set[str]) -> SyntheticCompany:
    base = original.company
    name = ""
    for _ in range(12):
        name = _vary_name(rng, original)
        if name != base.name and name not in taken_names and _similar(name, base.name):
            break
    else:  # always acceptable: same letters, different case
        name = base.name.lower() if base.name.lower() not in taken_names else base.name.upper()
    return SyntheticCompany(
        name=name,
        website=_vary_website(rng, base.website),
        industry=base.industry,
        nace_code=base.nace_code,
        country=base.country,
        activity_description=_vary_description(rng, base.activity_description),
        ownership_type=base.ownership_type if rng.random() < 0.75 else None,
        priority=base.priority if rng.random() < 0.6 else _PRIORITY.pick(rng),
        duplicate_of=index,
    )


# ----------------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------------


def _original(rng: random.Random, taken_slugs: set[str], taken_names: set[str]) -> _Original:
    country = _COUNTRY_CHOICE.pick(rng)
    ind = _INDUSTRY_CHOICE.pick(rng)
    size = _SIZE_PROFILES[ind.size_profile].pick(rng)
    ownership = _OWNERSHIP[size, ind.cooperative].pick(rng)

    if ownership == "publicly listed":
        suffix = country.listed_suffix
    elif size == "large":
        suffix = country.large_suffixes.pick(rng)
    else:
        suffix = country.suffixes.pick(rng)

    nordic = country.code in ("SE", "DK")
    name, name_city = _build_name(rng, ind, country, size, suffix)
    slug = name.slug(nordic)
    attempt = 0
    while not slug or slug in taken_slugs or name.render() in taken_names:
        attempt += 1
        if attempt < 20:
            name, name_city = _build_name(rng, ind, country, size, suffix)
        else:
            name = _disambiguate(rng, name, country, attempt)
        slug = name.slug(nordic)
    taken_slugs.add(slug)

    corporate = size == "large" and ownership in ("publicly listed", "private equity", "subsidiary")
    tld = "com" if corporate and rng.random() < 0.5 else country.tld

    low, high = ind.founded
    founded = rng.randint(low, high)
    if ownership == "founder-led":  # founders retire: keep the founding within a working life
        founded = rng.randint(max(low, 1985), high)
    elif size == "large":
        founded = min(founded, rng.randint(low, high))
    lo_emp, hi_emp = _EMPLOYEES[size]
    if size == "large":
        employees = round(lo_emp * (hi_emp / lo_emp) ** rng.random(), -1)
    else:
        employees = rng.randint(lo_emp, hi_emp)
        if employees >= 50:
            employees = round(employees, -1)
    employees = int(employees)

    city = name_city or rng.choice(country.cities)
    description, used = _first_sentence(rng, ind, country, city, size)
    if rng.random() < (0.6 if size == "micro" else 0.8):
        second = _second_sentence(rng, ind, country, size, ownership, founded, employees, used)
        description = f"{description} {second}"

    priority = _PRIORITY.pick(rng)
    if size == "large":
        priority = min(10, priority + rng.randint(0, 2))

    company = SyntheticCompany(
        name=name.render(),
        website=f"https://www.{slug}.{tld}",
        industry=ind.label,
        nace_code=ind.nace_code,
        country=country.name,
        activity_description=description,
        ownership_type=ownership,
        priority=priority,
        duplicate_of=None,
    )
    return _Original(company, name, country.and_word)


def generate_companies(n: int = 1000, *, seed: int = 7, duplicate_fraction: float = 0.02) -> list[SyntheticCompany]:
    """``n`` synthetic companies, the same for the same ``(n, seed, duplicate_fraction)`` in any process.

    ``round(n * duplicate_fraction)`` of them are near-duplicates of an earlier, distinct original
    (``duplicate_of`` holds its index); names are unique across the whole list, websites among the originals.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= duplicate_fraction < 1.0:
        raise ValueError(f"duplicate_fraction must be in [0, 1), got {duplicate_fraction}")
    rng = _Rng(seed)
    n_duplicates = min(round(n * duplicate_fraction), max(n - 1, 0))
    duplicate_positions = set(rng.sample(range(1, n), n_duplicates)) if n_duplicates else set()

    companies: list[SyntheticCompany] = []
    originals: dict[int, _Original] = {}
    available: list[int] = []  # originals not yet duplicated, so every duplicate pair is distinct ground truth
    taken_slugs: set[str] = set()
    taken_names: set[str] = set()
    for index in range(n):
        if index in duplicate_positions:
            pool = available if available else list(originals)
            pick = rng.randrange(len(pool))
            target = pool[pick]
            if pool is available:
                available[pick] = available[-1]
                available.pop()
            company = _near_duplicate(rng, target, originals[target], taken_names)
        else:
            original = _original(rng, taken_slugs, taken_names)
            originals[index] = original
            available.append(index)
            company = original.company
        taken_names.add(company.name)
        companies.append(company)
    return companies


def seed_companies(
    session: Session,
    n: int = 1000,
    *,
    seed: int = 7,
    duplicate_fraction: float = 0.02,
    chunk_size: int = SEED_CHUNK,
) -> list[int]:
    """Insert ``generate_companies(n, seed=...)`` as active ``Company`` rows; return their ids in order.

    Rows go in with executemany-style inserts, ``chunk_size`` at a time.  Nothing is committed: the caller
    owns the transaction (see ``core.db.session_scope``).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    rows: list[dict[str, Any]] = [
        {
            "name": c.name,
            "website": c.website,
            "industry": c.industry,
            "nace_code": c.nace_code,
            "country": c.country,
            "activity_description": c.activity_description,
            "ownership_type": c.ownership_type,
            "priority": c.priority,
            "status": CompanyStatus.ACTIVE,
            **keys_of(c.name, c.website),  # the duplicate keys an import compares (core.dedup_keys)
        }
        for c in generate_companies(n, seed=seed, duplicate_fraction=duplicate_fraction)
    ]
    # sort_by_parameter_order: RETURNING hands the ids back in the order of ``rows`` on every backend.
    stmt = insert(Company).returning(Company.id, sort_by_parameter_order=True)
    ids: list[int] = []
    for start in range(0, len(rows), chunk_size):
        ids.extend(session.scalars(stmt, rows[start : start + chunk_size]))
    return ids
