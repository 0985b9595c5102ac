"""The verdict every checker returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

VerdictStatus = Literal["verified", "refuted", "incomplete", "error", "unknown"]

# Default scores by status; a checker may refine within [-1, 1] (e.g. partial credit).
STATUS_SCORE: dict[str, float] = {
    "verified": 1.0,
    "refuted": -1.0,
    "incomplete": 0.0,
    "error": 0.0,
    "unknown": 0.0,
}


@dataclass(frozen=True)
class Checker:
    name: str
    version: str = ""


@dataclass(frozen=True)
class Verdict:
    status: VerdictStatus
    score: float
    message: str
    checker: Checker = field(default_factory=lambda: Checker("none"))
    # A refuted program's first line in error, where the checker locates it (1-based, in the
    # checked source): what comes before it is what the checker accepted, for a search to keep.
    line: int | None = None
    # Where in that line the error starts (0-based), when the checker says (coqc does): what
    # precedes it on the line was accepted too, e.g. the tactics before a failing one.
    column: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUS_SCORE:
            raise ValueError(f"unknown verdict status {self.status!r}")
        if not -1.0 <= self.score <= 1.0:
            raise ValueError(f"verdict score {self.score} outside [-1, 1]")

    @classmethod
    def of(cls, status: VerdictStatus, message: str, checker: Checker, score: float | None = None, line: int | None = None, column: int | None = None) -> "Verdict":
        return cls(status, STATUS_SCORE[status] if score is None else score, message, checker, line, column)

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Verdict":
        return cls(data["status"], data["score"], data["message"], Checker(**data.get("checker", {"name": "none"})), data.get("line"), data.get("column"))
