"""A DESIGN budget next to a measured number: "budget: met" or "MISSED by X" (never an assert)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Budget:
    """``value`` against ``limit`` (both in ``unit``); lower is better."""

    bench: str
    measure: str  # what the number is, e.g. "p99 latency"
    value: float
    limit: float
    unit: str
    rule: str = ""  # how the limit is set, when it is not a plain number (e.g. "1.25x bare p50")

    @property
    def met(self) -> bool | None:
        """None when nothing was measured."""
        if math.isnan(self.value):
            return None
        return self.value <= self.limit

    def verdict(self) -> str:
        met = self.met
        if met is None:
            return "NOT MEASURED"
        if met:
            return "budget: met"
        over = self.value - self.limit
        return f"MISSED by {over:.3g} {self.unit} ({self.value / self.limit:.2f}x the budget)"

    def limit_text(self) -> str:
        text = f"<= {self.limit:.4g} {self.unit}"
        return f"{text} ({self.rule})" if self.rule else text

    def row(self) -> list[Any]:
        return [
            self.bench,
            self.measure,
            f"{self.value:.4g} {self.unit}",
            self.limit_text(),
            self.verdict(),
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "measure": self.measure,
            "value": None if math.isnan(self.value) else self.value,
            "limit": self.limit,
            "unit": self.unit,
            "rule": self.rule,
            "met": self.met,
            "verdict": self.verdict(),
        }


SUMMARY_HEADER = ["bench", "measure", "value", "budget", "verdict"]
