"""One token flow for every vendor, and TLS messages that name the vendor's own variables."""

from __future__ import annotations

import httpx
import pytest

from reconciler.errors import ApiAuthError, ConfigError
from reconciler.vendors.tls import VendorTls, vendor_tls

from ..helpers.vendors import orion, sei


def test_a_refused_given_token_names_its_variable_and_how_to_mint_one():
    client = orion(lambda req: httpx.Response(401, json={"message": "invalid session"}))
    with pytest.raises(ApiAuthError, match="Orion refused the token in ORION_TOKEN") as info:
        client.list_registrations()
    assert "ORION_USERNAME and ORION_PASSWORD" in str(info.value) and info.value.refused
    with pytest.raises(ApiAuthError, match="SEI refused the token in SEI_TOKEN"):
        sei(
            lambda req: httpx.Response(
                401, json={"code": "gateway.authentication.failure", "message": "Access Token invalid"}
            )
        ).get_ticket(1)


def test_a_minted_token_is_renewed_once_on_a_401_and_the_second_401_stands():
    seen = []

    def handler(req):
        if req.url.path.endswith("/Security/Token"):
            seen.append("mint")
            return httpx.Response(200, json={"access_token": f"t{len(seen)}", "expires_in": 36000})
        seen.append(req.headers["Authorization"])
        return httpx.Response(401, json={"message": "expired"})

    with pytest.raises(ApiAuthError):
        orion(handler, token=None, username="u", password="p").list_registrations()
    assert seen == ["mint", "Session t1", "mint", "Session t3"]


def test_tls_hints_name_the_vendors_own_variables():
    orion_tls = VendorTls("Orion", "ORION_CA_BUNDLE", True)
    sei_tls = VendorTls("SEI", "SEI_CLIENT_CERT, SEI_CLIENT_KEY, SEI_CA_BUNDLE", True, two_way=True)
    assert "ORION_CA_BUNDLE" in orion_tls.hint("unknown ca") and "SEI_" not in orion_tls.hint("unknown ca")
    assert "client certificate" in sei_tls.hint("x") and "SEI_CLIENT_CERT" in sei_tls.hint("x")


def test_a_ca_bundle_that_cannot_be_read_is_a_configuration_error_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="Orion CA bundle .*ORION_CA_BUNDLE"):
        vendor_tls(
            "Orion", "https://orion.example/api", ca_bundle=str(tmp_path / "missing.pem"), variables="ORION_CA_BUNDLE"
        )
    with pytest.raises(ConfigError, match="SEI requires two-way TLS"):
        vendor_tls("SEI", "https://sei.example", require_client_cert=True, variables="SEI_CLIENT_CERT, SEI_CLIENT_KEY")
    assert vendor_tls("SEI", "http://127.0.0.1:8000", require_client_cert=True).context is True  # loopback http
