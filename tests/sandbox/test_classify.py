"""Classification answers: the truth of a company's NACE Rev. 2 section, division and business model, the
model's noise, invalid answers, and the whole round trip through the anthropic SDK's Message Batches."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import pytest

from sandbox.classify import (
    BUSINESS_MODELS,
    DIVISION_SECTION,
    DIVISIONS,
    NON_DIVISIONS,
    SECTION_DIVISIONS,
    ClassifyQuestion,
    CompanyText,
    classify_reply,
    find_classify_question,
    model_classification,
    parse_company,
    truth_business_model,
    truth_classification,
    truth_division,
)
from sandbox.generate import LEVELS, chat_reply
from sandbox.hashing import stable_hash
from sandbox.server import SandboxServer

HAIKU = "claude-haiku-4-5"
FULL = ("sector", "subsector", "business_model")


def system_prompt(keys: tuple[str, ...] = FULL) -> str:
    """Shaped like the project's reclassify system prompt (full or column mode)."""
    return "\n".join(
        [
            "You classify companies for a company database with the NACE Rev. 2 taxonomy (version x).",
            "NACE Rev. 2 sections: A Agriculture, forestry and fishing, B Mining and quarrying, ...",
            f"Answer with one JSON object and nothing else, with exactly these keys: {', '.join(keys)}.",
            '- sector: the NACE Rev. 2 section letter, A to U (for example "J").',
            "Judge from the company's own text; when it gives a NACE code, it is usually right.",
        ]
    )


def user_message(**fields: str) -> str:
    labels = {"name": "Name", "nace_code": "NACE code", "industry": "Industry", "activity": "Activity",
              "website": "Website"}  # fmt: skip
    return "\n".join(["Classify this company.", *(f"{labels[k]}: {v}" for k, v in fields.items())])


def ask(keys: tuple[str, ...] = FULL, *, model: str = "premium", noise: float = 0.0, invalid: bool = False,
        **fields: str) -> str:  # fmt: skip
    return chat_reply(
        [("system", system_prompt(keys)), ("user", user_message(**fields))], model=model, noise=noise, invalid=invalid
    )


def is_valid(answer: dict[str, Any]) -> bool:
    sector, division = answer.get("sector"), answer.get("subsector")
    if sector is not None and sector not in SECTION_DIVISIONS:
        return False
    if division is not None and division not in DIVISION_SECTION:
        return False
    if sector is not None and division is not None and DIVISION_SECTION[division] != sector:
        return False
    return answer.get("business_model", "B2B") in BUSINESS_MODELS


# --- the taxonomy table ----------------------------------------------------------------------------------


def test_division_table_is_nace_rev2() -> None:
    assert len(DIVISIONS) == 88 and len(SECTION_DIVISIONS) == 21
    assert list(SECTION_DIVISIONS) == [chr(c) for c in range(ord("A"), ord("U") + 1)]
    for gap in ("04", "34", "40", "44", "48", "54", "57", "67", "76", "83", "89"):
        assert gap not in DIVISION_SECTION and gap in NON_DIVISIONS
    assert SECTION_DIVISIONS["C"] == tuple(f"{n}" for n in range(10, 34))
    assert SECTION_DIVISIONS["A"] == ("01", "02", "03") and SECTION_DIVISIONS["U"] == ("99",)
    expected = {"62": "J", "64": "K", "56": "I", "86": "Q", "85": "P", "41": "F", "47": "G", "70": "M", "84": "O"}
    assert {code: DIVISION_SECTION[code] for code in expected} == expected


# --- the truth -------------------------------------------------------------------------------------------


def test_the_brief_example() -> None:
    answer = json.loads(
        ask(
            name="Acme GmbH",
            nace_code="62.01",
            industry="Software",
            activity="We build ERP software for wholesalers",
            website="acme.de",
        )  # fmt: skip
    )
    assert list(answer) == ["sector", "subsector", "business_model"]
    assert answer["sector"] == "J" and answer["subsector"] == "62" and answer["business_model"] in ("B2B", "B2B2C")


@pytest.mark.parametrize(
    ("code", "division"),
    [("62.01", "62"), ("6201", "62"), ("J62.01", "62"), (" 10.11 ", "10"), ("01.1", "01"), ("99", "99")],
)
def test_nace_code_decides(code: str, division: str) -> None:
    company = CompanyText(name="Bakery Jansen", nace_code=code, industry="Bakery")
    assert truth_division(company) == division


@pytest.mark.parametrize(
    ("fields", "division"),
    [
        ({"nace_code": "34.10", "industry": "Software"}, "62"),  # 34 is no division: the text decides
        ({"nace_code": "garbage", "activity": "A retail bank for families"}, "47"),  # first keyword wins
        ({"industry": "Banking"}, "64"),
        ({"activity": "We run three restaurants in Utrecht"}, "56"),
        ({"name": "St. Mary Hospital"}, "86"),
        ({"activity": "A primary school"}, "85"),
        ({"industry": "Construction", "activity": "Software for builders"}, "41"),  # industry before activity
        ({"activity": "Online shop for shoes"}, "47"),
        ({"activity": "Management consulting for banks"}, "70"),
        ({"activity": "Civil engineering works"}, "42"),  # the longer phrase at the same place
    ],
)
def test_keywords(fields: dict[str, str], division: str) -> None:
    assert truth_division(CompanyText(**fields)) == division


def test_hash_fallback_is_a_real_division_and_deterministic() -> None:
    seen = set()
    for i in range(300):
        company = CompanyText(name=f"Zorblax {i}", activity="We do things")
        division = truth_division(company)
        assert division in DIVISION_SECTION and division == truth_division(company)
        seen.add(division)
    assert len(seen) > 40  # spread over the divisions


def test_business_models() -> None:
    assert truth_business_model(CompanyText(activity="An online marketplace for used cars")) == "marketplace"
    assert truth_business_model(CompanyText(name="Gemeente Utrecht", nace_code="84.11")) == "public sector"
    assert truth_business_model(CompanyText(activity="Software for the municipality")) == "public sector"
    assert truth_business_model(CompanyText(industry="Retail")) == "B2C"
    assert truth_business_model(CompanyText(activity="We run a restaurant")) == "B2C"
    assert truth_business_model(CompanyText(nace_code="55.10")) == "B2C"
    assert truth_business_model(CompanyText(activity="Insurance for households")) == "B2C"
    others = [truth_business_model(CompanyText(name=f"Machine works {i}", nace_code="28")) for i in range(400)]
    assert set(others) == {"B2B", "B2B2C"} and 0.65 < others.count("B2B") / len(others) < 0.85


def test_whitespace_and_message_form_do_not_matter() -> None:
    parsed = parse_company(user_message(name="Acme  GmbH", industry=" Software ", website="acme.de"))
    assert parsed == CompanyText(name="Acme GmbH", industry="Software", website="acme.de")
    assert truth_classification(parsed) == truth_classification(CompanyText(name="Acme GmbH  ", industry="Software",
                                                                             website="acme.de"))  # fmt: skip


# --- noise -----------------------------------------------------------------------------------------------


def test_noise_moves_the_division_within_its_section() -> None:
    moved = 0
    total = 0
    for i in range(4000):
        company = CompanyText(name=f"Company {i}", nace_code=DIVISIONS[i % len(DIVISIONS)])
        truth = truth_classification(company)
        answer = model_classification(company, HAIKU, 0.1)
        assert answer["sector"] == truth["sector"] and answer["business_model"] == truth["business_model"]
        assert is_valid(answer)
        if len(SECTION_DIVISIONS[truth["sector"]]) == 1:
            assert answer == truth
            continue
        total += 1
        moved += answer["subsector"] != truth["subsector"]
        assert answer == model_classification(company, HAIKU, 0.1)  # the same every retry
    assert 0.08 < moved / total < 0.12
    company = CompanyText(name="Acme", nace_code="62")
    assert model_classification(company, HAIKU, 0.0) == truth_classification(company)
    assert model_classification(company, HAIKU, 1.0)["subsector"] in {"58", "59", "60", "61", "63"}


def test_column_mode_agrees_with_full_mode() -> None:
    for i in range(200):
        fields = {"name": f"Firm {i}", "activity": "We sell software and run a webshop"}
        full = json.loads(ask(model=HAIKU, noise=0.5, **fields))
        for key in FULL:
            column = json.loads(ask((key,), model=HAIKU, noise=0.5, **fields))
            assert column == {key: full[key]}


# --- invalid answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("keys", [FULL, ("subsector",), ("sector",), ("business_model",), ("sector", "subsector")])
def test_invalid_answers_do_not_fit_the_taxonomy(keys: tuple[str, ...]) -> None:
    kinds = set()
    for i in range(60):
        text = ask(keys, invalid=True, name=f"Firm {i}", industry="Software")
        assert text == ask(keys, invalid=True, name=f"Firm {i}", industry="Software")  # deterministic
        try:
            answer = json.loads(text)
        except ValueError:
            kinds.add("text")
            continue
        assert list(answer) == list(keys) and not is_valid(answer)
        kinds.add("sector Z" if answer.get("sector") == "Z" else "json")
    if {"sector", "subsector"} <= set(keys):
        assert kinds == {"text", "sector Z", "json"}  # the JSON ones: sector Z, or a division of another section
    else:
        assert kinds in ({"text", "json"}, {"text", "sector Z"})


def test_invalid_reply_function_directly() -> None:
    question = ClassifyQuestion(FULL, CompanyText(name="Acme", nace_code="62"))
    texts = {classify_reply(question, model="m", noise=0, invalid=True, digest=d) for d in range(8)}
    assert any(t.startswith("Sandbox invalid output") for t in texts)
    assert any(json.loads(t)["sector"] == "Z" for t in texts if t.startswith("{"))
    assert any(not is_valid(json.loads(t)) and json.loads(t)["sector"] == "J" for t in texts if t.startswith("{"))


# --- routing ---------------------------------------------------------------------------------------------


def test_only_marked_prompts_are_classification_questions() -> None:
    user = user_message(name="Acme", industry="Software", activity="High level of automation")
    assert find_classify_question([("system", system_prompt()), ("user", user)]) is not None
    no_taxonomy = system_prompt().replace("NACE Rev. 2", "some taxonomy")
    assert find_classify_question([("system", no_taxonomy), ("user", user)]) is None
    no_marker = system_prompt().replace("with exactly these keys:", "with the keys:")
    assert find_classify_question([("system", no_marker), ("user", user)]) is None
    unknown_key = system_prompt(("sector", "colour"))
    assert find_classify_question([("system", unknown_key), ("user", user)]) is None
    # The company text says "level", but a classification prompt never gets a level answer.
    answer = json.loads(chat_reply([("system", system_prompt()), ("user", user)]))
    assert set(answer) == set(FULL)
    # A repair turn appended after the answer gets the same classification.
    repaired = chat_reply(
        [("system", system_prompt()), ("user", user), ("assistant", "oops"), ("user", "Answer with JSON only.")]
    )
    assert json.loads(repaired) == answer


def test_level_answers_are_unchanged() -> None:
    messages = [("user", "Company profile:\nName: Acme\n\nCriterion: AI strategy\nAnswer with the level.")]
    digest = stable_hash(json.dumps(messages, ensure_ascii=False))
    reply = json.loads(chat_reply(messages, model="premium"))
    assert reply["level"] in LEVELS and reply["reasoning"].startswith(f"Sandbox truth {digest & 0xFFFFFFFF:08x}")


# --- through the SDK -------------------------------------------------------------------------------------


def _classify_request(custom_id: str, keys: tuple[str, ...] = FULL, **fields: str) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": HAIKU,
            "max_tokens": 100,
            "system": system_prompt(keys),
            "messages": [{"role": "user", "content": user_message(**fields)}],
        },
    }


def test_reclassify_batch_round_trip(sandbox: SandboxServer, claude: anthropic.Anthropic) -> None:
    sandbox.configure(
        "anthropic",
        job_duration_s=0.2,
        faults=[
            {"kind": "invalid_output", "match": "Firm 3 "},
            {"kind": "expire", "match": "Firm 4 "},
            {"kind": "cancel", "match": "Firm 5 "},
            {"kind": "fail_run", "match": "Firm 6 "},
        ],
    )
    companies = {f"co-{i}": {"name": f"Firm {i} BV", "nace_code": f"{DIVISIONS[i * 7]}.10"} for i in range(10)}
    requests = [_classify_request(cid, **fields) for cid, fields in companies.items()]
    requests.append(_classify_request("col-0", ("subsector",), **companies["co-0"]))
    batch = claude.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    deadline = time.monotonic() + 5
    while (ended := claude.messages.batches.retrieve(batch.id)).processing_status != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.02)  # polling the server's status with a deadline
    counts = ended.request_counts
    assert (counts.succeeded, counts.errored, counts.expired, counts.canceled) == (8, 1, 1, 1)
    results = {line.custom_id: line.result for line in claude.messages.batches.results(batch.id)}
    assert [results[f"co-{i}"].type for i in (4, 5, 6)] == ["expired", "canceled", "errored"]
    answers = {
        cid: result.message.content[0].text  # type: ignore[union-attr]
        for cid, result in results.items()
        if result.type == "succeeded"
    }
    for cid, text in answers.items():
        if cid in ("co-3", "col-0"):
            continue
        answer = json.loads(text)
        company = CompanyText(**companies[cid])
        assert answer == model_classification(company, HAIKU, 0.1) and is_valid(answer)
        assert answer["sector"] == truth_classification(company)["sector"]
    invalid = answers["co-3"]
    assert invalid.startswith("Sandbox invalid output") or not is_valid(json.loads(invalid))
    assert json.loads(answers["col-0"]) == {"subsector": json.loads(answers["co-0"])["subsector"]}


def test_messages_create_classifies(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        system=system_prompt(("business_model",)),
        messages=[{"role": "user", "content": user_message(name="City of Delft", activity="The municipality")}],
    )
    assert json.loads(message.content[0].text) == {"business_model": "public sector"}  # type: ignore[union-attr]
