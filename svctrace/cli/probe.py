"""`explain --probe` lives in svctrace.explain.probe; these names stay importable from here."""

from __future__ import annotations

from svctrace.explain.probe import _probe_socket, probe, probe_report, probe_targets

__all__ = ["_probe_socket", "probe", "probe_report", "probe_targets"]
