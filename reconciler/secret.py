"""Secret: a credential that never shows its value (repr, str, pickles), in the bottom layer so that
config, sealing and the vendor clients share one type without importing one another."""

from __future__ import annotations

__all__ = ["MASK", "Secret"]

MASK = "****"


class Secret:
    """A credential. Never shows its value unless asked with reveal()."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # a Secret never travels into a pickle (plan files, worker processes)
        raise TypeError("secrets cannot be serialised")
