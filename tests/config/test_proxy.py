"""The explicit proxy (config/proxy.py): from the environment or reconciler.yaml, NO_PROXY, masked."""

from __future__ import annotations

import pytest

from reconciler.config import load_settings
from reconciler.config.proxy import proxy_settings
from reconciler.errors import ConfigError


def test_https_proxy_and_no_proxy_choose_per_vendor_host():
    p = proxy_settings(
        {"HTTPS_PROXY": "http://u:p4ss@proxy:3128", "NO_PROXY": "localhost, .firm.internal,sei:8443"}, None, "x"
    )
    assert p is not None and p.shown == "http://****@proxy:3128"
    assert p.for_url("https://api.orionadvisor.com/api") is p.url
    assert p.for_url("http://localhost:8080/api") is None
    assert p.for_url("https://orion.firm.internal/api") is None and p.for_url("https://firm.internal") is None
    assert p.for_url("https://sei:8443") is None and p.for_url("https://sei:443") is p.url
    assert p.secrets() == ["p4ss", "u:p4ss"]
    assert proxy_settings({"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "*"}, None, "x").for_url("https://a") is None


def test_reconciler_yaml_proxy_and_the_environment_wins(tmp_path):
    (tmp_path / "reconciler.yaml").write_text("proxy: {url: 'http://proxy.firm:3128', noProxy: [sei.firm]}\n")
    settings = load_settings([str(tmp_path)], env={})
    assert settings.proxy is not None and settings.proxy.shown == "http://proxy.firm:3128"
    assert settings.proxy.no_proxy == ("sei.firm",)
    from_env = load_settings([str(tmp_path)], env={"HTTPS_PROXY": "http://other:8080"})
    assert from_env.proxy is not None and from_env.proxy.shown == "http://other:8080"


@pytest.mark.parametrize("value", ["socks5://u:s3cr3t@proxy:1080", "proxy:3128"])
def test_an_unusable_proxy_is_refused_with_its_password_masked(value):
    with pytest.raises(ConfigError) as e:
        proxy_settings({"HTTPS_PROXY": value}, None, "x")
    assert "s3cr3t" not in str(e.value) and "HTTPS_PROXY" in str(e.value)
