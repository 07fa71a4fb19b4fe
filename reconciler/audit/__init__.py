"""Audits: live state against the manifests (drift), and the two ways back to agreement besides apply.

drift.py     drift findings, with who changed what and when, and ignore rules' expiry
adopt.py     drift --adopt: live values written into the manifests as minimal text edits
importer.py  live state → manifests, for resources not yet under management
"""

from reconciler.audit.drift import DriftReport, Finding, build_drift_report

__all__ = ["DriftReport", "Finding", "build_drift_report"]
