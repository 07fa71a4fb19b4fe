"""Schemathesis hooks for the contract test: how to generate the named formats of the sandbox's OpenAPI
descriptions, so that "schema-valid" requests are valid for real (a CUSIP with its check digit, a cursor the
server issued) and the fuzzer can hold the sandbox to accepting them.

Valid CUSIPs are found with the *client's* check (reconciler.manifests.rules), not the sandbox's: the contract test
then also holds the two implementations of the check digit to each other.
"""

from __future__ import annotations

import base64

import schemathesis
from hypothesis import strategies as st

from reconciler.manifests.rules import cusip_check_digit

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*@#"


def _with_check_digit(prefix: str) -> str:
    return f"{prefix}{cusip_check_digit(prefix)}"


schemathesis.openapi.format("cusip", st.text(_ALPHABET, min_size=8, max_size=8).map(_with_check_digit))
schemathesis.openapi.format(
    "sei-cursor", st.integers(0, 10_000).map(lambda n: base64.urlsafe_b64encode(str(n).encode()).decode())
)
