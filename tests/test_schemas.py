"""The JSON Schemas (schemas/) and the field catalogue (reconciler/fields.py) name the same fields,
and each server-owned field is refused by the schema (fields.py's docstring promises this file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler import fields as F

COMMON = json.loads((Path(__file__).resolve().parent.parent / "schemas" / "common.schema.json").read_text())["$defs"]
OWNED = {"$ref": "#/$defs/serverOwned"}


def _props(name: str) -> dict:
    return COMMON[name]["properties"]


@pytest.mark.parametrize("schema_def, declared, owned, structural", [
    ("registrationSettings", F.REGISTRATION_FIELDS, F.SERVER_OWNED_REGISTRATION_FIELDS,
     {"accountSleeves", "deletedSleeveTargets"}),
    ("sleeve", F.SLEEVE_FIELDS, F.SERVER_OWNED_SLEEVE_FIELDS, {"accountId"}),
])
def test_the_schema_names_exactly_the_catalogued_fields(schema_def, declared, owned, structural):
    props = _props(schema_def)
    assert set(props) == set(declared) | set(owned) | structural
    assert not set(declared) & set(owned)


@pytest.mark.parametrize("schema_def, declared, owned", [
    ("registrationSettings", F.REGISTRATION_FIELDS, F.SERVER_OWNED_REGISTRATION_FIELDS),
    ("sleeve", F.SLEEVE_FIELDS, F.SERVER_OWNED_SLEEVE_FIELDS),
])
def test_server_owned_fields_are_refused_and_declared_ones_are_typed(schema_def, declared, owned):
    props = _props(schema_def)
    assert all(props[f] == OWNED for f in owned), [f for f in owned if props[f] != OWNED]
    assert all(props[f] != OWNED for f in declared), [f for f in declared if props[f] == OWNED]


def test_instruction_fields_are_the_catalogue_less_what_the_batch_gives():
    # batchId comes from the TradeBatch and tradeTicketId is each item's key (trade-batch.schema.json);
    # batchSize is listed read-only: derived from the number of instructions, never declared
    props = set(_props("instructionFields"))
    assert props == set(F.INSTRUCTION_FIELDS) - {"batchId", "tradeTicketId"} | {"batchSize"}
    assert _props("instructionFields")["batchSize"].get("readOnly") is True


def test_the_sleeve_types_are_the_schemas_enum():
    enum = COMMON["sleeve"]["properties"]["sleeveType"].get("enum")
    assert enum is not None and set(enum) == set(F.SLEEVE_TYPES)
