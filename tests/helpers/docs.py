"""Small manifests tests write into trees of their own."""

from __future__ import annotations

__all__ = ["SIMPLE_REGISTRATION"]

# one registration of two Normal sleeves that sum to 100 (31547 exists in the sandbox's demo state)
SIMPLE_REGISTRATION = """\
apiVersion: reconciler/v1
kind: SleeveRegistration
metadata: {name: r1}
spec:
  registrationId: 31547
  accountSleeves:
    - {sleeveType: Normal sleeve, modelAggId: 36, targetAllocation: 50, toleranceUpper: 5}
    - {sleeveType: Normal sleeve, modelAggId: 34, targetAllocation: 50, minimumCash: 0}
"""
