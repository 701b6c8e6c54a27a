"""A ground truth for company classification questions (NACE Rev. 2 section and division, business model).

The project's LLM reclassify sends, per company, a system prompt that names the taxonomy ("NACE Rev. 2") and
the keys to answer with (``Answer with one JSON object and nothing else, with exactly these keys: sector,
subsector, business_model.``; column mode asks for a subset), and a user message with the company's own text::

    Classify this company.
    Name: Acme GmbH
    NACE code: 62.01
    Industry: Software
    Activity: We build ERP software for wholesalers
    Website: acme.de

(any line but the first may be missing). :func:`find_classify_question` recognises such a conversation and
:func:`classify_reply` answers it with one JSON object holding exactly the asked keys.

The truth is a pure function of the company's fields (:func:`truth_classification`), so a benchmark can compute
the expected labels offline:

- division (``subsector``): the first two digits of the NACE code when they are a real division; otherwise the
  first keyword found in the industry, then the activity, then the name (software → 62, bank → 64, ...); with
  none, a hash of the company's text over the 88 real divisions;
- section (``sector``): the division's section letter A–U;
- business model: ``marketplace`` when the text says so; ``public sector`` for section O or government words;
  ``B2C`` for consumer-facing divisions (retail, hotels, restaurants, ...) or consumer words; otherwise a hash
  choice of ``B2B`` (3 in 4) or ``B2B2C``.

A model with noise rate r (:func:`model_classification`) moves the division to another division of the same
section at rate r (a section with a single division keeps it), by a hash of (model, company): the sector and
the business model stay right. Nothing here imports from the project: the division table is the sandbox's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from sandbox.hashing import stable_hash, unit_interval

TAXONOMY_MARKER = "NACE Rev. 2"
KEYS_MARKER = "with exactly these keys:"
COMPANY_HEADER = "Classify this company."
FIELDS = ("sector", "subsector", "business_model")
BUSINESS_MODELS = ("B2B", "B2C", "B2B2C", "marketplace", "public sector")
B2B_SHARE = 0.75  # without a business-model clue, B2B this often, else B2B2C

# (section, first division, last division): every number in a range is a real division; the gaps (04, 34, 40,
# 44, 48, 54, 57, 67, 76, 83, 89) lie between sections.
_SECTION_RANGES = (
    ("A", 1, 3), ("B", 5, 9), ("C", 10, 33), ("D", 35, 35), ("E", 36, 39), ("F", 41, 43), ("G", 45, 47),
    ("H", 49, 53), ("I", 55, 56), ("J", 58, 63), ("K", 64, 66), ("L", 68, 68), ("M", 69, 75), ("N", 77, 82),
    ("O", 84, 84), ("P", 85, 85), ("Q", 86, 88), ("R", 90, 93), ("S", 94, 96), ("T", 97, 98), ("U", 99, 99),
)  # fmt: skip

#: section letter -> its division codes, A..U in order
SECTION_DIVISIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {letter: tuple(f"{n:02d}" for n in range(first, last + 1)) for letter, first, last in _SECTION_RANGES}
)
#: division code -> section letter (the 88 divisions of NACE Rev. 2)
DIVISION_SECTION: Mapping[str, str] = MappingProxyType(
    {code: letter for letter, codes in SECTION_DIVISIONS.items() for code in codes}
)
DIVISIONS: tuple[str, ...] = tuple(DIVISION_SECTION)
#: two-digit codes that are not divisions (between sections), used for invalid answers
NON_DIVISIONS: tuple[str, ...] = tuple(f"{n:02d}" for n in range(1, 100) if f"{n:02d}" not in DIVISION_SECTION)

# Keyword -> division. Whole words, case-insensitive, an optional plural "s"/"es"; within one text the earliest
# keyword wins (at the same position the longer one).
_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("farm", "01"), ("farming", "01"), ("agriculture", "01"), ("agricultural", "01"), ("crop", "01"),
    ("livestock", "01"), ("forestry", "02"), ("logging", "02"), ("fishing", "03"), ("fishery", "03"),
    ("fisheries", "03"), ("aquaculture", "03"), ("coal", "05"), ("oil and gas", "06"), ("petroleum", "06"),
    ("mining", "08"), ("quarry", "08"), ("quarrying", "08"), ("bakery", "10"), ("food production", "10"),
    ("food manufacturer", "10"), ("dairy", "10"), ("brewery", "11"), ("winery", "11"), ("distillery", "11"),
    ("beverage", "11"), ("textile", "13"), ("clothing", "14"), ("apparel", "14"), ("fashion", "14"),
    ("furniture", "31"), ("printing", "18"), ("chemical", "20"), ("chemicals", "20"), ("pharmaceutical", "21"),
    ("pharma", "21"), ("plastic", "22"), ("plastics", "22"), ("rubber", "22"), ("metalworking", "25"),
    ("electronics", "26"), ("semiconductor", "26"), ("electrical equipment", "27"), ("machinery", "28"),
    ("automotive", "29"), ("car manufacturer", "29"), ("manufacturing", "32"), ("energy", "35"),
    ("electricity", "35"), ("solar", "35"), ("utility", "35"), ("utilities", "35"), ("water supply", "36"),
    ("sewerage", "37"), ("waste", "38"), ("recycling", "38"), ("construction", "41"), ("builder", "41"),
    ("homebuilder", "41"), ("civil engineering", "42"), ("plumbing", "43"), ("roofing", "43"),
    ("electrician", "43"), ("car dealer", "45"), ("car repair", "45"), ("wholesale", "46"), ("wholesaler", "46"),
    ("distributor", "46"), ("retail", "47"), ("retailer", "47"), ("shop", "47"), ("webshop", "47"),
    ("store", "47"), ("supermarket", "47"), ("e-commerce", "47"), ("trucking", "49"), ("transport", "49"),
    ("taxi", "49"), ("shipping", "50"), ("airline", "51"), ("aviation", "51"), ("logistics", "52"),
    ("warehousing", "52"), ("warehouse", "52"), ("courier", "53"), ("parcel", "53"), ("postal", "53"),
    ("hotel", "55"), ("hostel", "55"), ("accommodation", "55"), ("restaurant", "56"), ("cafe", "56"),
    ("catering", "56"), ("publishing", "58"), ("publisher", "58"), ("film", "59"), ("video production", "59"),
    ("broadcasting", "60"), ("broadcaster", "60"), ("telecom", "61"), ("telecommunications", "61"),
    ("software", "62"), ("saas", "62"), ("it services", "62"), ("programming", "62"), ("erp", "62"),
    ("hosting", "63"), ("data processing", "63"), ("web portal", "63"), ("marketplace", "63"),
    ("bank", "64"), ("banking", "64"),
    ("fintech", "64"), ("lending", "64"), ("insurance", "65"), ("insurer", "65"), ("pension fund", "65"),
    ("asset management", "66"), ("broker", "66"), ("real estate", "68"), ("property management", "68"),
    ("law firm", "69"), ("lawyer", "69"), ("legal", "69"), ("accounting", "69"), ("accountant", "69"),
    ("consulting", "70"), ("consultancy", "70"), ("architect", "71"), ("architecture", "71"),
    ("engineering", "71"), ("research", "72"), ("laboratory", "72"), ("biotech", "72"), ("advertising", "73"),
    ("marketing", "73"), ("market research", "73"), ("design", "74"), ("translation", "74"),
    ("photography", "74"), ("veterinary", "75"), ("rental", "77"), ("leasing", "77"), ("recruitment", "78"),
    ("staffing", "78"), ("travel agency", "79"), ("tour operator", "79"), ("security", "80"),
    ("cleaning", "81"), ("landscaping", "81"), ("call center", "82"), ("municipality", "84"),
    ("government", "84"), ("ministry", "84"), ("public administration", "84"), ("school", "85"),
    ("university", "85"), ("education", "85"), ("training", "85"), ("hospital", "86"), ("clinic", "86"),
    ("healthcare", "86"), ("dentist", "86"), ("medical", "86"), ("nursing home", "87"),
    ("residential care", "87"), ("social work", "88"), ("childcare", "88"), ("theatre", "90"),
    ("theater", "90"), ("museum", "91"), ("library", "91"), ("casino", "92"), ("gambling", "92"),
    ("betting", "92"), ("sports", "93"), ("fitness", "93"), ("gym", "93"), ("association", "94"),
    ("church", "94"), ("trade union", "94"), ("repair", "95"), ("hairdresser", "96"), ("salon", "96"),
    ("laundry", "96"), ("embassy", "99"),
)  # fmt: skip


def _word_pattern(phrase: str) -> str:
    words = r"\s+".join(re.escape(word) for word in phrase.split())
    return rf"(?<![\w-]){words}(?:s|es)?(?![\w-])"


_KEYWORD_RES: tuple[tuple[re.Pattern[str], str, int], ...] = tuple(
    (re.compile(_word_pattern(phrase), re.IGNORECASE), division, len(phrase)) for phrase, division in _KEYWORDS
)
_MARKETPLACE = re.compile(r"\bmarket\s*-?\s*places?\b|\btwo-sided\b", re.IGNORECASE)
_PUBLIC = re.compile(
    r"\b(?:municipalit(?:y|ies)|municipal|government(?:al)?|ministry|ministries|public (?:administration|authority|"
    r"body|agency|sector)|state-owned)\b",
    re.IGNORECASE,
)
_CONSUMER = re.compile(
    r"\b(?:consumers?|households?|retail|shops?|webshops?|stores?|restaurants?|cafes?|shoppers?|families|"
    r"private customers|homeowners|tourists|patients)\b",
    re.IGNORECASE,
)
CONSUMER_DIVISIONS = frozenset({"47", "55", "56", "92", "93", "95", "96"})
_NACE = re.compile(r"^\s*(?:[A-Za-z]\s*\.?\s*)?(\d)\s*(\d)")
_FIELD_LINE = re.compile(r"^\s*(name|nace code|industry|activity|website)\s*:\s*(.*?)\s*$", re.IGNORECASE)
_FIELD_NAMES = {"name": "name", "nace code": "nace_code", "industry": "industry", "activity": "activity",
                "website": "website"}  # fmt: skip


@dataclass(frozen=True)
class CompanyText:
    """What the user message shows of a company (whitespace inside a value does not matter)."""

    name: str = ""
    nace_code: str = ""
    industry: str = ""
    activity: str = ""
    website: str = ""

    def normalised(self) -> CompanyText:
        return CompanyText(*(" ".join(value.split()) for value in self._values()))

    def _values(self) -> tuple[str, str, str, str, str]:
        return (self.name, self.nace_code, self.industry, self.activity, self.website)

    @property
    def key(self) -> str:
        """The company's identity for every hash: its fields, whitespace-normalised."""
        return "\x1e".join(self.normalised()._values())


@dataclass(frozen=True)
class ClassifyQuestion:
    """A classification conversation: the keys asked (in the prompt's order) and the company."""

    keys: tuple[str, ...]
    company: CompanyText


def parse_company(text: str) -> CompanyText:
    """The company fields of a user message (``Label: value`` lines; unknown lines are ignored)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _FIELD_LINE.match(line)
        if match:
            values.setdefault(_FIELD_NAMES[match.group(1).lower()], match.group(2))
    return CompanyText(**values).normalised()


def asked_keys(prompt: str) -> tuple[str, ...] | None:
    """The keys after :data:`KEYS_MARKER` (to the end of its line, trailing "." dropped), or None when the prompt
    is not a classification prompt or asks for a key this taxonomy does not have."""
    if TAXONOMY_MARKER not in prompt or KEYS_MARKER not in prompt:
        return None
    line = prompt.split(KEYS_MARKER, 1)[1].split("\n", 1)[0].strip().rstrip(".")
    keys = tuple(key.strip().strip("`\"'") for key in line.split(","))
    if not keys or any(key not in FIELDS for key in keys) or len(set(keys)) != len(keys):
        return None
    return keys


def find_classify_question(messages: Sequence[tuple[str, str]]) -> ClassifyQuestion | None:
    """The classification question of a conversation of ``(role, text)`` pairs, or None.

    The first message naming "NACE Rev. 2" and the keys marker (the system prompt) gives the keys; the first
    user message starting "Classify this company." (else the first user message) gives the company. Repair
    turns only append messages, so they get the same answer.
    """
    keys = next((k for _, text in messages if (k := asked_keys(text)) is not None), None)
    if keys is None:
        return None
    users = [text for role, text in messages if role == "user"]
    if not users:
        return None
    company = next((text for text in users if text.lstrip().startswith(COMPANY_HEADER)), users[0])
    return ClassifyQuestion(keys, parse_company(company))


# --- truth -----------------------------------------------------------------------------------------------


def nace_division(code: str) -> str | None:
    """The division of a NACE code (first two digits, after an optional section letter) if it is a real one."""
    match = _NACE.match(code)
    if match is None:
        return None
    division = match.group(1) + match.group(2)
    return division if division in DIVISION_SECTION else None


def keyword_division(text: str) -> str | None:
    """The division of the earliest keyword in ``text`` (the longer keyword at a tie), or None."""
    best: tuple[int, int, str] | None = None
    for pattern, division, length in _KEYWORD_RES:
        found = pattern.search(text)
        if found is not None and (best is None or (found.start(), -length) < best[:2]):
            best = (found.start(), -length, division)
    return best[2] if best is not None else None


def truth_division(company: CompanyText) -> str:
    """The company's true NACE Rev. 2 division (``subsector``): NACE code, else keywords, else a hash."""
    company = company.normalised()
    division = nace_division(company.nace_code)
    if division is not None:
        return division
    for text in (company.industry, company.activity, company.name):
        division = keyword_division(text)
        if division is not None:
            return division
    return DIVISIONS[stable_hash("classify-division", company.key) % len(DIVISIONS)]


def truth_business_model(company: CompanyText, division: str | None = None) -> str:
    """The company's true business model (``division``: its true division, computed when not given)."""
    company = company.normalised()
    division = division or truth_division(company)
    text = " ".join((company.name, company.industry, company.activity))
    if _MARKETPLACE.search(text):
        return "marketplace"
    if DIVISION_SECTION[division] == "O" or _PUBLIC.search(text):
        return "public sector"
    if division in CONSUMER_DIVISIONS or _CONSUMER.search(text):
        return "B2C"
    return "B2B" if unit_interval("classify-business-model", company.key) < B2B_SHARE else "B2B2C"


def truth_classification(company: CompanyText) -> dict[str, str]:
    """``{"sector", "subsector", "business_model"}`` as the truth has them."""
    division = truth_division(company)
    return {
        "sector": DIVISION_SECTION[division],
        "subsector": division,
        "business_model": truth_business_model(company, division),
    }


def model_classification(company: CompanyText, model: str, noise: float) -> dict[str, str]:
    """What ``model`` answers: the truth, with the division moved within its section at the rate ``noise``.

    The draw hashes the model and the company, so one model is wrong the same way on every retry and in every
    mode (a column-mode ``subsector`` agrees with the full answer). A section with one division keeps it.
    """
    answer = truth_classification(company)
    key = company.key
    if noise <= 0 or unit_interval("classify-noise", model, key) >= noise:
        return answer
    others = [code for code in SECTION_DIVISIONS[answer["sector"]] if code != answer["subsector"]]
    if others:
        answer["subsector"] = others[stable_hash("classify-noise-pick", model, key) % len(others)]
    return answer


# --- answers ---------------------------------------------------------------------------------------------


def _invalid_answer(question: ClassifyQuestion, answer: dict[str, str], digest: int) -> str:
    """An answer that does not fit the taxonomy: non-JSON text, or a JSON object with an impossible value.

    Which one, and which value breaks (a sector outside A–U, a division outside its section, a code that is no
    division, an unknown business model), follows from ``digest`` and the asked keys.
    """
    tag = f"{digest & 0xFFFFFFFF:08x}"
    if digest % 2 == 1:
        return f"Sandbox invalid output {tag}: the company is probably in sector {answer['sector']} {{"
    broken = {key: answer[key] for key in question.keys}
    choice = (digest >> 1) % 2
    if "sector" in broken and ("subsector" not in broken or choice == 0):
        broken["sector"] = "Z"
    elif "subsector" in broken and "sector" in broken:
        elsewhere = [code for code in DIVISIONS if DIVISION_SECTION[code] != broken["sector"]]
        broken["subsector"] = elsewhere[(digest >> 2) % len(elsewhere)]
    elif "subsector" in broken:
        broken["subsector"] = NON_DIVISIONS[(digest >> 2) % len(NON_DIVISIONS)]
    else:
        broken["business_model"] = "B2G"
    return json.dumps(broken)


def classify_reply(question: ClassifyQuestion, *, model: str, noise: float, invalid: bool, digest: int) -> str:
    """The assistant text: one JSON object with exactly the asked keys (``invalid``: one that does not fit)."""
    answer = model_classification(question.company, model, noise)
    if invalid:
        return _invalid_answer(question, answer, digest)
    return json.dumps({key: answer[key] for key in question.keys})
