"""The JSON Schemas (schemas/) and the field catalogue (reconciler/fields.py) name the same fields,
and each server-owned field is refused by the schema (fields.py's docstring promises this file);
validation's shortcut reports exactly what jsonschema reports."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import fields as F
from reconciler.manifests import schema
from reconciler.yamldoc import load_documents

REPO = Path(__file__).resolve().parent.parent.parent
COMMON = json.loads((REPO / "schemas" / "common.schema.json").read_text())["$defs"]
OWNED = {"$ref": "#/$defs/serverOwned"}


def _props(name: str) -> dict:
    return COMMON[name]["properties"]


@pytest.mark.parametrize(
    "schema_def, declared, owned, structural",
    [
        (
            "registrationSettings",
            F.REGISTRATION_FIELDS,
            F.SERVER_OWNED_REGISTRATION_FIELDS,
            {"accountSleeves", "deletedSleeveTargets"},
        ),
        ("sleeve", F.SLEEVE_FIELDS, F.SERVER_OWNED_SLEEVE_FIELDS, {"accountId"}),
    ],
)
def test_the_schema_names_exactly_the_catalogued_fields(schema_def, declared, owned, structural):
    props = _props(schema_def)
    assert set(props) == set(declared) | set(owned) | structural
    assert not set(declared) & set(owned)


@pytest.mark.parametrize(
    "schema_def, declared, owned",
    [
        ("registrationSettings", F.REGISTRATION_FIELDS, F.SERVER_OWNED_REGISTRATION_FIELDS),
        ("sleeve", F.SLEEVE_FIELDS, F.SERVER_OWNED_SLEEVE_FIELDS),
    ],
)
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


# --- the validation shortcut (schema._surely_valid) reports exactly what jsonschema reports ---


def _stock_errors(name: str, instance) -> list:
    """jsonschema alone, without the shortcut: the same inlined schema, its own keyword functions."""
    stock = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"readOnly": schema._read_only})
    validator = stock(schema._inline(schema.load_schema(name), name), registry=schema._registry())
    return sorted((list(e.absolute_path), e.validator, e.message) for e in validator.iter_errors(instance))


def _our_errors(name: str, instance) -> list:
    return sorted(
        (list(e.absolute_path), e.validator, e.message) for e in schema._validator(name).iter_errors(instance)
    )


EXAMPLES = [
    (schema.KIND_SCHEMAS[doc.data["kind"]], doc.data)
    for path in sorted(REPO.joinpath("manifests").rglob("*.yaml"))
    for doc in load_documents(path.read_bytes(), str(path))[0]
]
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**9)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "Buy", "Normal sleeve", "LCG", "reconciler/v1", "x" * 70, "Percent", "BAD"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["name", "side", "target", "extra", "modelAggId", "tradeTicketId"]), inner, max_size=3
        )
    ),
    max_leaves=6,
)


def _containers(value, path=()):
    yield path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _containers(child, path + (key,))


def test_the_examples_are_valid_and_judged_alike():
    assert len(EXAMPLES) >= 5
    for name, instance in EXAMPLES:
        assert _our_errors(name, instance) == _stock_errors(name, instance) == []


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_the_shortcut_reports_what_jsonschema_reports_on_broken_documents(data):
    """Documents broken at random places (replaced, deleted or added values), judged after the valid
    examples have filled the memo of valid scalars: the same errors, paths and messages."""
    name, instance = data.draw(st.sampled_from(EXAMPLES))
    doc = copy.deepcopy(instance)
    for _ in range(data.draw(st.integers(1, 3))):
        path, target = data.draw(st.sampled_from([(p, v) for p, v in _containers(doc) if isinstance(v, (dict, list))]))
        if isinstance(target, dict) and target and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(target)))
            if data.draw(st.booleans()):
                del target[key]
            else:
                target[key] = data.draw(_JSON)
        elif isinstance(target, dict):
            target[data.draw(st.sampled_from(["extra", "name", "side", "accountId", "batchSize"]))] = data.draw(_JSON)
        elif target:
            target[data.draw(st.integers(0, len(target) - 1))] = data.draw(_JSON)
    assert _our_errors(name, doc) == _stock_errors(name, doc)


def test_a_value_remembered_as_valid_does_not_vouch_for_an_equal_value_of_another_type():
    """1 == True == 1.0 in Python; an integer field that accepted 1 must still refuse True."""
    name, instance = next((n, i) for n, i in EXAMPLES if i["kind"] == "TradeBatch")
    doc = copy.deepcopy(instance)
    doc["spec"]["instructions"][0]["target"] = 1
    assert _our_errors(name, doc) == []
    doc["spec"]["instructions"][0]["target"] = True
    assert _our_errors(name, doc) == _stock_errors(name, doc) != []
