"""The CLI's frame: exit codes as SPEC.md §3 fixes them, errors without tracebacks, shared option types."""

from __future__ import annotations

import click
import pytest

from reconciler.cli.app import DURATION, run

from ..helpers.cli import run_cli


def test_usage_errors_exit_1_not_clicks_2_which_means_changes_here():
    r = run_cli("plan", "--no-such-flag")
    assert r.code == 1 and "No such option" in r.err and "Traceback" not in r.err
    assert run_cli("no-such-command").code == 1


def test_debug_is_accepted_before_or_after_the_subcommand():
    assert run_cli("--debug", "validate", "--help").code == 0
    assert run_cli("validate", "--help", "--debug").code == 0


def test_the_version_prints_and_exits_0(capsys):
    assert run(["--version"]) == 0
    assert "reconciler" in capsys.readouterr().out


@pytest.mark.parametrize("text,seconds", [("3s", 3.0), ("5m", 300.0), ("90", 90.0)])
def test_durations_are_an_option_type(text, seconds):
    assert DURATION.convert(text, None, None) == seconds
    with pytest.raises(click.BadParameter):
        DURATION.convert("soon", None, None)
