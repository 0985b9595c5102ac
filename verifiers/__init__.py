"""Checkers for answers and programs. They never call a model."""

from verifiers.types import Checker, Verdict

__all__ = ["Checker", "Verdict"]
