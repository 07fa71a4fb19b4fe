"""`reconciler validate`: hardened YAML, schema and business rules, each alone in a file."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import ManifestError, ReconcilerError
from reconciler.manifests import load_manifests
from reconciler.manifests.rules import cusip_check_digit
from reconciler.yamldoc import MAX_FILE_BYTES

from ..helpers.processes import ROOT

REG = """\
apiVersion: reconciler/v1
kind: SleeveRegistration
metadata: {{name: r1}}
spec:
  registrationId: 31547
{extra}"""

BATCH = """\
apiVersion: reconciler/v1
kind: TradeBatch
metadata: {{name: b1}}
spec:
  batchId: "B-1"
  strategyCode: LCG
{extra}"""

GOOD_INSTR = (
    "  instructions:\n"
    '    - {tradeTicketId: 1, masterOrderId: 2, side: Buy, ticker: AAPL, cusip: "037833100",'
    " target: 10, orderGenerationPrice: 1.5}\n"
)


def errors_of(cli, path) -> list[str]:
    r = cli("validate", str(path))
    assert r.code == 1, r
    assert "Traceback" not in r.err
    lines = [ln for ln in r.err.splitlines() if not ln.startswith("Error:")]
    assert r.err.rstrip().splitlines()[-1].startswith("Error: "), r
    return lines


def one_error(cli, path) -> str:
    lines = errors_of(cli, path)
    assert len(lines) == 1, lines
    return lines[0]


def test_example_manifests_are_valid(cli, no_network, monkeypatch):
    """The shipped manifests validate cleanly without opening a socket."""
    monkeypatch.chdir(ROOT)
    r = cli("validate")
    assert r.code == 0, r
    assert "4 registrations, 2 trade batches (5 instructions)" in r.err
    assert no_network == []


# --- hostile YAML --------------------------------------------------------------------------------

HOSTILE = {
    "alias": ("a: &x {k: 1}\nb: *x\n", 2, "anchors and aliases are not allowed"),
    "merge_key": ("base: {k: 1}\nother:\n  <<: {k: 2}\n", 3, "merge keys (<<) are not allowed"),
    "duplicate_key": (
        "apiVersion: reconciler/v1\nkind: TradeBatch\nmetadata: {}\nkind: TradeBatch\n",
        4,
        "duplicate key 'kind' (first at line 2)",
    ),
    "duplicate_nested_key": ("a:\n  b: 1\n  c: 2\n  b: 3\n", 4, "duplicate key 'b' (first at line 2)"),
    "custom_tag": (
        "apiVersion: !!python/object:os.system {}\n",
        1,
        "tag tag:yaml.org,2002:python/object:os.system is not allowed",
    ),
    "local_tag": ("a: !secret x\n", 1, "tag !secret is not allowed"),
    "syntax": ("a: [1, 2\nb: 3\n", 2, "YAML syntax error"),
    "deep_flow": ("a: " + "[" * 60000 + "]" * 60000 + "\n", 1, "nesting deeper than 1000 levels"),
    "deep_block": ("a:\n" + "- " * 1200 + "x\n", 2, "nesting deeper than 1000 levels"),
    "moderately_deep": ("a: " + "[" * 80 + "]" * 80 + "\n", 1, "nesting deeper than 64 levels"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_is_refused_with_its_line(cli, write, no_network, case):
    """Each hostile construct alone in a file: exit 1, its line, no traceback, no socket."""
    text, line, message = HOSTILE[case]
    err = one_error(cli, write("m.yaml", text))
    assert err.startswith(f"m.yaml:{line}:") or f"/m.yaml:{line}:" in err, err
    assert message in err


def test_billion_laughs_is_refused_quickly(cli, write):
    """Nested aliases are refused at the first alias, never expanded."""
    lol = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    lines = errors_of(cli, write("lol.yaml", lol))
    assert all("anchors and aliases are not allowed" in ln for ln in lines)


def test_non_utf8_names_its_line(cli, write):
    err = one_error(cli, write("m.yaml", b"a: 1\nb: caf\xe9\n"))
    assert ":2:" in err and "not valid UTF-8" in err


def test_oversized_file_is_refused_before_parsing(cli, write):
    err = one_error(cli, write("m.yaml", b"#" * (MAX_FILE_BYTES + 1)))
    assert ":1:1:" in err and "over the" in err and "split it" in err


@pytest.mark.parametrize(
    "field,raw,what",
    [
        ("batchId", "20261120", "a number"),
        ("batchId", "2026-11-20", "a date"),
        ("strategyCode", "yes", "a boolean"),
        ("strategyCode", "1.5", "a number"),
    ],
)
def test_identifier_typed_by_yaml_says_quote_it(cli, write, field, raw, what):
    text = BATCH.format(extra=GOOD_INSTR).replace('batchId: "B-1"', "batchId: B-1")
    text = text.replace(f"{field}: LCG" if field == "strategyCode" else "batchId: B-1", f"{field}: {raw}")
    err = one_error(cli, write("b.yaml", text))
    line = 5 if field == "batchId" else 6
    assert f":{line}:3: {field}: '{raw}' is read by YAML as {what}" in err
    assert f'quote it: {field}: "{raw}"' in err


def test_side_no_is_caught(cli, write):
    text = BATCH.format(extra="  side: NO\n" + GOOD_INSTR.replace("side: Buy, ", ""))
    err = one_error(cli, write("b.yaml", text))
    assert ":7:3: side: 'NO' is read by YAML as a boolean" in err and "Buy, Sell" in err


def test_unquoted_cusip_with_leading_zero_is_caught(cli, write):
    err = one_error(cli, write("b.yaml", BATCH.format(extra=GOOD_INSTR.replace('"037833100"', "012345670"))))
    assert ":8:" in err and "cusip" in err and "read by YAML as a number" in err and "quote it" in err


def test_leading_zero_id_is_caught(cli, write):
    err = one_error(
        cli, write("b.yaml", BATCH.format(extra=GOOD_INSTR.replace("tradeTicketId: 1,", "tradeTicketId: 0100,")))
    )
    assert ":8:" in err and "'0100' is read by YAML 1.1 as the number 64" in err


def test_yes_as_flag_is_caught(cli, write):
    err = one_error(cli, write("r.yaml", REG.format(extra="  isActive: on\n")))
    assert ":6:" in err and "'on' is read by YAML 1.1 as a boolean" in err


# --- schema --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra,line,message",
    [
        ("  isActiv: true\n", 6, "unknown field 'isActiv' (did you mean 'isActive'?)"),
        (
            "  accountSleeves:\n    - {sleeveType: Normal sleeve, modelAggId: 1, targetAlocation: 100}\n",
            7,
            "unknown field 'targetAlocation' (did you mean 'targetAllocation'?)",
        ),
        ("  clientId: 29685\n", 6, "'clientId' is owned by the server"),
        ("  tolerancePercent: 120\n", 6, "tolerancePercent: 120 is greater than the maximum of 100"),
        ("  autoRebalFrequency: Weekly\n", 6, 'autoRebalFrequency: "Weekly" is not allowed'),
        (
            "  accountSleeves:\n"
            "    - {sleeveType: Normal sleeve, modelAggId: 1, targetAllocation: 100, currentValue: 5}\n",
            7,
            "'currentValue' is owned by the server",
        ),
    ],
)
def test_registration_schema_errors(cli, write, extra, line, message):
    err = one_error(cli, write("r.yaml", REG.format(extra=extra)))
    assert f"r.yaml:{line}:" in err and message in err, err


def test_a_refused_sleeve_type_does_not_cascade_into_a_sum_error(cli, write):
    """The sum over Normal and Unmanaged sleeves cannot be judged while one sleeve's type is refused:
    only the type error is reported (an independent error, e.g. a sleeve's own, still is)."""
    sleeves = (
        "  accountSleeves:\n"
        "    - {sleeveType: Nrmal sleeve, modelAggId: 1, targetAllocation: 60}\n"
        "    - {sleeveType: Normal sleeve, modelAggId: 2, targetAllocation: 40}\n"
    )
    err = one_error(cli, write("r.yaml", REG.format(extra=sleeves)))
    assert 'sleeveType: "Nrmal sleeve" is not allowed' in err and "sums" not in err, err


def test_a_field_at_the_wrong_level_says_where_it_belongs(cli, write):
    err = one_error(cli, write("r.yaml", REG.format(extra="") + "isDoNotTrade: true\n"))
    assert "unknown field 'isDoNotTrade' ('isDoNotTrade' belongs under spec:)" in err, err


def test_missing_registration_id(cli, write):
    err = one_error(
        cli, write("r.yaml", REG.format(extra="").replace("  registrationId: 31547\n", "  isActive: true\n"))
    )
    assert "r.yaml:4:1: missing required field 'registrationId'" in err


@pytest.mark.parametrize(
    "edit,message",
    [
        (("tradeTicketId: 1,", "tradeTicketId: 123456789,"), "123456789 is greater than the maximum of 99999999"),
        (("side: Buy", "side: Hold"), 'side: "Hold" is not allowed (use one of: Buy, Sell)'),
        (("target: 10", "target: 10, comments: " + "x" * 256), "comments: "),
        (("target: 10", "target: 10, batchSize: 4"), "batchSize is derived"),
        (('"037833100"', '"03783310"'), "is not 9 letters or digits"),
    ],
)
def test_instruction_schema_errors(cli, write, edit, message):
    err = one_error(cli, write("b.yaml", BATCH.format(extra=GOOD_INSTR.replace(*edit))))
    assert "b.yaml:8:" in err and message in err, err


def test_unknown_kind_and_api_version(cli, write):
    write("k/a.yaml", "apiVersion: reconciler/v1\nkind: Sleeve\nmetadata: {name: a}\nspec: {}\n")
    write("k/b.yaml", "apiVersion: v2\nkind: TradeBatch\n")
    lines = errors_of(cli, write("k/a.yaml", "apiVersion: reconciler/v1\nkind: Sleeve\n").parent)
    assert lines[0].endswith(
        "a.yaml:2:1: unknown kind 'Sleeve' (use one of: SleeveRegistration, SleeveTemplate, TradeBatch, Policy)"
    )
    assert "b.yaml:1:1: apiVersion must be reconciler/v1, got 'v2'" in lines[1]


# --- business rules ------------------------------------------------------------------------------


def sleeves(*rows: str) -> str:
    return "  accountSleeves:\n" + "".join(f"    - {{{r}}}\n" for r in rows)


@pytest.mark.parametrize(
    "extra,line,message",
    [
        (
            sleeves(
                "sleeveType: Normal sleeve, modelAggId: 1, targetAllocation: 60",
                "sleeveType: Unmanaged sleeve, targetAllocation: 30",
            ),
            6,
            "targetAllocation sums over Normal and Unmanaged sleeves (targetBalanceType Percent) to 90, not 100",
        ),
        (
            "  contributionAllocationMethod: Assigned\n"
            + sleeves(
                "sleeveType: Normal sleeve, modelAggId: 1, targetAllocation: 50, contributionAllocation: 50",
                "sleeveType: Normal sleeve, modelAggId: 2, targetAllocation: 50, contributionAllocation: 40",
            ),
            7,
            "contributionAllocation sums over Normal and Unmanaged sleeves to 90",
        ),
        (
            "  distributionAllocationMethod: Assigned\n"
            + sleeves("sleeveType: Normal sleeve, modelAggId: 1, targetAllocation: 100, distributionAllocation: 99"),
            7,
            "distributionAllocation sums over Normal and Unmanaged sleeves to 99",
        ),
        (
            sleeves(
                "sleeveType: Normal sleeve, modelAggId: 1, targetAllocation: 100",
                "sleeveType: Contribution sleeve",
                "sleeveType: Contribution sleeve",
            ),
            9,
            "a second 'Contribution sleeve' (first is sleeve #2)",
        ),
        (sleeves("sleeveType: Normal sleeve, targetAllocation: 100"), 7, "a Normal sleeve must name a model"),
        (
            sleeves("sleeveType: Normal sleeve, modelAggId: 1, model: {id: 2}, targetAllocation: 100"),
            7,
            "modelAggId 1 and model.id 2 differ",
        ),
        (
            sleeves(
                "sleeveType: Normal sleeve, modelAggId: 1, targetAllocation: 100, toleranceLower: 3, toleranceUpper: 2"
            ),
            7,
            "toleranceLower 3 is above toleranceUpper 2",
        ),
        (
            sleeves(
                "sleeveType: Normal sleeve, modelAggId: 1, targetAllocation: 50",
                "sleeveType: Normal sleeve, modelAggId: 1, targetAllocation: 50",
            ),
            8,
            "this sleeve matches the same live sleeve as sleeve #1",
        ),
        (
            sleeves(
                "sleeveType: Normal sleeve, modelAggId: 1, targetAllocation: 50.004",
                "sleeveType: Normal sleeve, modelAggId: 2, targetAllocation: 49.999",
            ),
            6,
            "",
        ),
    ],
)
def test_sleeve_rules(cli, write, extra, line, message):
    path = write("r.yaml", REG.format(extra=extra))
    if not message:  # within the epsilon: valid
        assert cli("validate", str(path)).code == 0
        return
    err = one_error(cli, path)
    assert f"r.yaml:{line}:" in err and message in err, err


def test_sum_points_at_the_list_key_and_thirds_are_fine(cli, write):
    ok = write(
        "ok.yaml",
        REG.format(
            extra=sleeves(
                *(
                    f"sleeveType: Normal sleeve, modelAggId: {i}, targetAllocation: {v}"
                    for i, v in ((1, 33.33), (2, 33.33), (3, 33.34))
                )
            )
        ),
    )
    assert cli("validate", str(ok)).code == 0


def test_duplicates_point_at_second_and_name_first(cli, write):
    write("d/a.yaml", REG.format(extra=""))
    write("d/b.yaml", REG.format(extra="").replace("name: r1", "name: r2"))
    write("d/c.yaml", BATCH.format(extra=GOOD_INSTR))
    path = write("d/e.yaml", BATCH.format(extra=GOOD_INSTR).replace("b1", "b2"))
    lines = errors_of(cli, path.parent)
    assert any("b.yaml:5:3: duplicate registrationId 31547 (first at" in ln and "a.yaml:5)" in ln for ln in lines), (
        lines
    )
    assert any("e.yaml:5:3: duplicate batchId B-1 (first at" in ln for ln in lines), lines
    assert any(
        "e.yaml:8:" in ln and "duplicate tradeTicketId 1 (first at" in ln and "c.yaml:8)" in ln for ln in lines
    ), lines


def test_duplicate_name_in_one_file(cli, write):
    path = write("two.yaml", REG.format(extra="") + "---\n" + REG.format(extra="").replace("31547", "31548"))
    err = one_error(cli, path)
    assert "two.yaml:9:" in err and "duplicate SleeveRegistration name r1 (first at" in err and "two.yaml:3)" in err


def test_missing_template(cli, write):
    err = one_error(cli, write("r.yaml", REG.format(extra="  template: core-60-40\n")))
    assert "r.yaml:6:3: template 'core-60-40' does not exist" in err


def test_template_merge_registration_fields_win(write):
    """Own fields override the template; own accountSleeves replace the template's list."""
    write(
        "t.yaml",
        """
        apiVersion: reconciler/v1
        kind: SleeveTemplate
        metadata: {name: t}
        spec:
          isDoNotTrade: false
          autoRebalFrequency: Monthly
          accountSleeves:
            - {sleeveType: Normal sleeve, modelAggId: 1, targetAllocation: 100}
        """,
    )
    p = write(
        "r.yaml",
        REG.format(
            extra="  template: t\n  isDoNotTrade: true\n"
            + sleeves("sleeveType: Normal sleeve, modelAggId: 2, targetAllocation: 100")
        ),
    )
    m = load_manifests([str(p.parent)])
    (reg,) = m.registrations
    assert reg.fields == {"isDoNotTrade": True, "autoRebalFrequency": "Monthly"}
    assert [s.fields["modelAggId"] for s in reg.sleeves] == [2]
    assert reg.sleeves[0].source.file.endswith("r.yaml") and reg.source.line == 1


def test_batch_defaults_are_inherited_and_size_derived(write):
    extra = (
        "  affectsModel: true\n"
        + GOOD_INSTR
        + GOOD_INSTR.splitlines()[1].replace("tradeTicketId: 1", "tradeTicketId: 2").replace("side: Buy", "side: Sell")
        + "\n"
    )
    m = load_manifests([str(write("b.yaml", BATCH.format(extra=extra)))])
    (batch,) = m.batches
    assert batch.batch_size == 2
    first, second = batch.instructions
    assert first.fields["strategyCode"] == "LCG" and first.fields["affectsModel"] is True
    assert first.fields["batchId"] == "B-1" and second.fields["side"] == "Sell"
    assert (first.source.line, second.source.line) == (9, 10)


def test_cusip_check_digit(cli, write):
    assert cusip_check_digit("03783310") == 0 and cusip_check_digit("67066G10") == 4
    err = one_error(cli, write("b.yaml", BATCH.format(extra=GOOD_INSTR.replace("037833100", "037833109"))))
    assert "b.yaml:8:" in err and "cusip '037833109' fails its check digit (expected 0)" in err


def test_instruction_missing_required_after_merge(cli, write):
    err = one_error(cli, write("b.yaml", BATCH.format(extra=GOOD_INSTR.replace("side: Buy, ", ""))))
    assert "b.yaml:8:7: instruction 1 has no side" in err


def test_all_errors_at_once_sorted(cli, write):
    write("s/b.yaml", REG.format(extra="  isActiv: true\n"))
    write("s/a.yaml", REG.format(extra="  clientId: 1\n  mandat: true\n").replace("r1", "r0").replace("31547", "2"))
    lines = errors_of(cli, write("s/c.yaml", "x: [").parent)
    files = [ln.split(":")[0].rsplit("/", 1)[-1] for ln in lines]
    assert files == sorted(files) and len(lines) == 4
    assert "Error: 4 errors in 3 files" in cli("validate", str(write("s/c.yaml", "x: [").parent)).err


def test_debug_shows_no_traceback_for_user_errors_but_cli_never_crashes(write):
    """A real subprocess: invalid input gives exit 1 and no traceback."""
    path = write("m.yaml", "a: &x 1\nb: *x\n")
    p = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(path)], capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr and "aliases are not allowed" in p.stderr


# --- property: nothing escapes -------------------------------------------------------------------

yaml_ish = st.text(
    alphabet=st.sampled_from(list("ab:- \n\t[]{}&*!<>'\"#|%@`,?0123456789.\\") + ["\x00", "é", "\ufeff"]), max_size=200
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(yaml_ish, st.binary(max_size=200)))
def test_no_input_escapes_as_anything_but_our_error(tmp_path, body):
    """Whatever the bytes, loading either succeeds or raises ReconcilerError."""
    p = tmp_path / "fuzz.yaml"
    p.write_bytes(body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body)
    try:
        load_manifests([str(p)])
    except ReconcilerError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spec=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
        max_leaves=12,
    ),
    kind=st.sampled_from(["SleeveRegistration", "SleeveTemplate", "TradeBatch"]),
)
def test_structurally_odd_specs_give_manifest_errors(tmp_path, spec, kind):
    """Well-formed YAML of any shape under a real kind: a ManifestError, never a crash."""
    import json

    p = tmp_path / "odd.yaml"
    p.write_text(json.dumps({"apiVersion": "reconciler/v1", "kind": kind, "metadata": {"name": "x"}, "spec": spec}))
    try:
        load_manifests([str(p)], allow_empty=True)
    except ManifestError:
        pass


def test_parallel_loading_gives_the_same_result(write, monkeypatch):
    """Worker processes (used for large trees) find the same resources and the same errors."""
    import reconciler.manifests as manifests

    for i in range(6):
        write(f"p/r{i}.yaml", REG.format(extra="").replace("r1", f"r{i}").replace("31547", str(100 + i)))
    write("p/bad.yaml", REG.format(extra="  isActiv: true\n").replace("r1", "bad").replace("31547", "99"))
    root = str(write("p/x.yaml", BATCH.format(extra=GOOD_INSTR)).parent)
    with pytest.raises(ManifestError) as serial:
        load_manifests([root])
    monkeypatch.setattr(manifests, "PARALLEL_THRESHOLD", 1)
    with pytest.raises(ManifestError) as parallel:
        load_manifests([root], workers=2)
    assert [str(d) for d in parallel.value.diagnostics] == [str(d) for d in serial.value.diagnostics]
    (tmp := write("q/r.yaml", REG.format(extra="")))
    assert load_manifests([str(tmp.parent)], workers=2).registrations[0].registration_id == 31547


def test_a_repeated_bad_sleeve_is_reported_in_every_file(cli, write):
    """Sleeve validation is memoised per process; each file still gets its own error and line."""
    bad = sleeves("sleeveType: Normal sleeve, modelAggId: 1, targetAllocation: 100, tolerancePct: 2")
    write("c/a.yaml", REG.format(extra=bad))
    path = write("c/b.yaml", REG.format(extra="  isActive: true\n" + bad).replace("r1", "r2").replace("31547", "7"))
    lines = errors_of(cli, path.parent)
    assert [ln.split(": ")[0].rsplit("/", 1)[-1] for ln in lines] == ["a.yaml:7:73", "b.yaml:8:73"]
    assert all("unknown field 'tolerancePct'" in ln for ln in lines)


def test_a_name_typed_as_a_number_says_quote_it(cli, write):
    err = one_error(cli, write("r.yaml", REG.format(extra="").replace("name: r1", "name: 2026")))
    assert "r.yaml:3:" in err and "name: '2026' is read by YAML as a number" in err and 'quote it: name: "2026"' in err
