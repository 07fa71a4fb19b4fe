"""Tools beyond Python that some tests need: Chromium for the HTML reports, throwaway TLS certificates.

CI must have them (.ci/run installs Debian's packages); elsewhere a test without them skips, saying why.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

__all__ = ["chromium_or_skip", "issue_tls_files"]


def chromium_or_skip() -> str:
    """Debian's Chromium; CI must have it (.ci/run installs it), elsewhere the test skips with a reason."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Chromium: .ci/run installs Debian's chromium package")
        pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it and runs this test")
    return browser


def issue_tls_files(directory: Path, *, client_not_after=None) -> dict[str, str]:
    """PEM files from a throwaway trustme CA: a server certificate for 127.0.0.1/localhost, a client
    certificate (expiring at `client_not_after` when given) and an unrelated key for mismatch tests."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("svc-reconciler@example.com", not_after=client_not_after)
    other = ca.issue_cert("someone-else@example.com")
    paths = {
        n: str(directory / f"{n}.pem")
        for n in ("ca", "server_cert", "server_key", "client_cert", "client_key", "other_key")
    }
    ca.cert_pem.write_to_path(paths["ca"])
    server.cert_chain_pems[0].write_to_path(paths["server_cert"])
    server.private_key_pem.write_to_path(paths["server_key"])
    client.cert_chain_pems[0].write_to_path(paths["client_cert"])
    client.private_key_pem.write_to_path(paths["client_key"])
    other.private_key_pem.write_to_path(paths["other_key"])
    return paths
