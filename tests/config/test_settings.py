"""Configuration: reconciler.yaml, the environment and flags; credentials only from the environment;
durations as people type them; the settle window's floor; environments by name; safe base URLs."""

from __future__ import annotations

import pytest

from reconciler.config import OrionSettings, Secret, Settings, load_settings, require_safe_url
from reconciler.config.durations import parse_duration
from reconciler.errors import ConfigError
from reconciler.fields import SETTLE_FLOOR_SECONDS

from ..helpers.cli import run_cli
from ..helpers.docs import SIMPLE_REGISTRATION
from ..helpers.processes import ROOT

REG = SIMPLE_REGISTRATION


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("3", 3.0),
        (3, 3.0),
        ("2.5", 2.5),
        ("3s", 3.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        (" 10S ", 10.0),
    ],
)
def test_durations_read_as_terraform_users_write_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "3x", "s", "-3", "nan", "inf", "3s5", True, "1h-5m"])
def test_a_duration_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_work_in_the_environment_and_in_reconciler_yaml(tmp_path):
    (tmp_path / "reconciler.yaml").write_text("pollTimeout: 30m\ntimeouts: {read: 90s, write: 1m}\n")
    s = load_settings([str(tmp_path)], env={"RECONCILER_SETTLE_WINDOW": "5m"})
    assert (s.poll_timeout, s.read_timeout, s.write_timeout, s.settle) == (1800.0, 90.0, 60.0, 300.0)
    with pytest.raises(ConfigError, match=r"RECONCILER_POLL_TIMEOUT: '3 fortnights' is not a duration"):
        load_settings([str(tmp_path)], env={"RECONCILER_POLL_TIMEOUT": "3 fortnights"})


def test_lock_timeout_takes_a_duration_on_the_command_line():
    r = run_cli("apply", "--lock-timeout", "soon", "--auto-approve")
    assert r.code == 1 and "'soon' is not a duration" in r.err


def test_the_settle_window_has_a_floor_that_short_time_outs_cannot_lower():
    """How long a vendor may hold a request is the vendor's: 2 s time-outs leave the floor in place."""
    fast = Settings(read_timeout=2, write_timeout=2)
    assert fast.settle == SETTLE_FLOOR_SECONDS[None] == 30.0
    assert Settings(read_timeout=2, write_timeout=2, environment="production").settle == 120.0
    assert Settings(read_timeout=60, write_timeout=90).settle == 150.0  # long time-outs go above it
    assert Settings(read_timeout=2, write_timeout=2, settle_window=3).settle == 3.0  # an explicit choice stands


def test_secret_type_is_masked_and_unpicklable():
    import pickle

    s = Secret("hunter2-very-secret")
    assert "hunter2" not in repr(s) + str(s) + repr(OrionSettings("https://x", s))
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_config_file_refuses_credentials_and_env_overrides_file(tmp_path):
    (tmp_path / "reconciler.yaml").write_text(
        "batchSize: 50\nparallelism: 2\norion: {baseUrl: 'https://o.example/api'}\n"
    )
    s = load_settings([str(tmp_path)], env={"RECONCILER_PARALLELISM": "8", "SEI_BASE_URL": "https://s.example"})
    assert (s.batch_size, s.parallelism, s.orion.base_url, s.sei.base_url) == (
        50,
        8,
        "https://o.example/api",
        "https://s.example",
    )
    (tmp_path / "reconciler.yaml").write_text("orion: {baseUrl: x}\nsei_token: abc\n")
    with pytest.raises(ConfigError, match="looks like a credential"):
        load_settings([str(tmp_path)], env={})
    (tmp_path / "reconciler.yaml").write_text("batchSize: 101\n")
    with pytest.raises(ConfigError, match="between 1 and 100"):
        load_settings([str(tmp_path)], env={})


def test_credentials_can_come_from_files(tmp_path):
    f = tmp_path / "tok"
    f.write_text("from-a-file\n")
    s = load_settings([], env={"ORION_TOKEN_FILE": str(f)})
    assert s.orion.token.reveal() == "from-a-file"


@pytest.mark.parametrize(
    "url,ok",
    [
        ("https://api.orionadvisor.com/api", True),
        ("http://127.0.0.1:8765/api", True),
        ("http://localhost:1", True),
        ("http://10.0.0.5/api", False),
        ("ftp://x", False),
        ("", False),
    ],
)
def test_plain_http_only_on_loopback(url, ok):
    if ok:
        assert require_safe_url(url, "ORION_BASE_URL")
    else:
        with pytest.raises(ConfigError):
            require_safe_url(url, "ORION_BASE_URL")


def test_settings_defaults_are_sane():
    s = Settings()
    assert s.batch_size == 100 and s.parallelism == 4 and s.read_chunk == 500


def test_environments_fill_the_documented_base_urls_and_explicit_urls_win(tmp_path):
    s = load_settings((), env={"RECONCILER_ENVIRONMENT": "production"})
    assert (s.orion.base_url, s.sei.base_url) == ("https://api.orionadvisor.com/api", "https://mtls.api.seic.com")
    s = load_settings((), env={"RECONCILER_ENVIRONMENT": "build", "SEI_BASE_URL": "https://mtls.example.com:444"})
    assert (
        s.sei.base_url == "https://mtls.example.com:444" and s.orion.base_url == "https://testapi.orionadvisor.com/api"
    )
    (tmp_path / "reconciler.yaml").write_text("environment: test\n")
    s = load_settings((), env={}, config_file=str(tmp_path / "reconciler.yaml"))
    assert s.sei.base_url == "https://test.mtls.api.seic.com" and s.environment == "test"
    with pytest.raises(ConfigError, match="not one of production, test, sandbox, build"):
        load_settings((), env={"RECONCILER_ENVIRONMENT": "prod"})


def test_an_ignore_rule_for_a_field_that_does_not_exist_is_refused(cli, write, tmp_path):
    write("m/r.yaml", REG)
    write("m/reconciler.yaml", "ignore:\n  - {address: '*', field: 'accountSleeves[*].minimumCahs', reason: typo}\n")
    r = cli("validate", str(tmp_path / "m"))
    assert r.code == 0  # validate checks manifests; every command that loads settings refuses the rule:
    r = cli("plan", str(tmp_path / "m"))
    assert r.code == 1 and "no sleeve field is called 'minimumCahs'" in r.err
    write("m/reconciler.yaml", "ignore:\n  - {address: '*', field: 'isDoNotTrad', reason: typo}\n")
    assert "no registration or instruction field is called 'isDoNotTrad'" in cli("plan", str(tmp_path / "m")).err


def test_url_userinfo_is_refused_and_masked(cli, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("ORION_BASE_URL", "https://svc:hunter2-pass@api.example.com/api")
    for k, v in {
        "SEI_BASE_URL": "https://sei.example.com",
        "ORION_TOKEN": "t",
        "SEI_TOKEN": "t",
        "SEI_APP_KEY": "k",
    }.items():
        monkeypatch.setenv(k, v)
    r = cli("plan")
    assert r.code == 1 and "https://****@api.example.com/api" in r.err and "hunter2" not in r.err
