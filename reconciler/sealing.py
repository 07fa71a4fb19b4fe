"""Files safe to hand to CI: age encryption to the apply environment. The only module that imports pyrage.

A saved plan holds client data (account numbers, allocations, every trade). Where recipients are
configured (`plan_recipients` in reconciler.yaml, RECONCILER_PLAN_RECIPIENTS, `--encrypt-to`), every
file reconciler writes for upload — saved plan, apply report, drift report — is encrypted to them
(X25519 age recipients), so a pull-request job can write plans it can never read. Only the
protected apply environment holds the identity (RECONCILER_PLAN_IDENTITY, a secret). The format is
standard age: `age -d -i key.txt plan.age` reads what this module writes.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyrage
from pyrage import x25519

from reconciler.errors import ConfigError, PlanFileError
from reconciler.secret import Secret

__all__ = ["AGE_MAGIC", "for_upload", "generate_identity", "is_sealed", "parse_recipients", "seal", "unseal"]

AGE_MAGIC = b"age-encryption.org/v1\n"


def is_sealed(data: bytes) -> bool:
    return data.startswith(AGE_MAGIC)


def parse_recipients(values: Iterable[str], where: str) -> tuple[str, ...]:
    """Validated age recipients (age1…); a malformed one is a configuration error naming its origin."""
    out = []
    for v in values:
        v = v.strip()
        if not v:
            continue
        try:
            x25519.Recipient.from_str(v)
        except Exception as e:  # pyrage raises its own RecipientError or a ValueError by version
            shown = v[:12] + "…" if len(v) > 12 else v
            raise ConfigError(
                f"{where}: {shown!r} is not an age X25519 recipient (age1…); make one with "
                "`reconciler keygen` or `age-keygen`"
            ) from e
        out.append(v)
    return tuple(out)


def seal(data: bytes, recipients: tuple[str, ...]) -> bytes:
    return pyrage.encrypt(data, [x25519.Recipient.from_str(r) for r in recipients])


def for_upload(data: bytes, recipients: tuple[str, ...]) -> tuple[bytes, bool]:
    """(the bytes to write, whether they are encrypted): encrypted to `recipients` when there are any."""
    return (seal(data, recipients), True) if recipients else (data, False)


def _identity(secret: Secret) -> x25519.Identity:
    # an identity file from age-keygen has comment lines; the key is the AGE-SECRET-KEY-1… line
    lines = [ln.strip() for ln in secret.reveal().splitlines() if ln.strip() and not ln.startswith("#")]
    try:
        return x25519.Identity.from_str(lines[0] if lines else "")
    except Exception:  # `from None` on purpose: the parser's message may quote the secret key it refused
        raise ConfigError(
            "RECONCILER_PLAN_IDENTITY is not an age identity (AGE-SECRET-KEY-1…); give the key "
            "`reconciler keygen` or `age-keygen` wrote (or RECONCILER_PLAN_IDENTITY_FILE)"
        ) from None


def unseal(data: bytes, identity: Secret | None, name: str) -> bytes:
    """The plaintext of an encrypted file; one readable error (never the identity) for each way it fails."""
    if identity is None:
        raise PlanFileError(
            f"{name} is encrypted: set RECONCILER_PLAN_IDENTITY (or RECONCILER_PLAN_IDENTITY_FILE) "
            "to the identity of one of its recipients; only the apply environment should hold it"
        )
    key = _identity(identity)
    try:
        return pyrage.decrypt(data, [key])
    except pyrage.DecryptError as e:
        if "no matching keys" in str(e).lower():
            raise PlanFileError(
                f"{name} is encrypted to other recipients: RECONCILER_PLAN_IDENTITY is not one of "
                "them (check which key the plan job encrypts to)"
            ) from e
        raise PlanFileError(
            f"{name} is damaged or truncated (decryption failed); nothing was written; make a new plan"
        ) from e


def generate_identity() -> tuple[str, str]:
    """(the public recipient age1…, the secret identity AGE-SECRET-KEY-1…)."""
    ident = x25519.Identity.generate()
    return str(ident.to_public()), str(ident)
