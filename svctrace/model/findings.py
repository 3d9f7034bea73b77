"""Findings: plain data with stable ids; one reporter renders them, tests assert on the id."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Severity(IntEnum):
    INFO = 1
    WARNING = 2
    ERROR = 3

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(
                f"unknown severity {text!r} (expected info, warning or error)") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    id: str                                  # stable, e.g. "SVC-NO-MATCHING-PODS"
    severity: Severity
    message: str                             # one line
    evidence: tuple[str, ...] = field(default_factory=tuple)
    command: str | None = None               # what a person would run to see it by hand

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "severity": str(self.severity), "message": self.message,
                "evidence": list(self.evidence), "command": self.command}


def worst(findings: list[Finding] | tuple[Finding, ...]) -> Severity | None:
    return max((f.severity for f in findings), default=None)
