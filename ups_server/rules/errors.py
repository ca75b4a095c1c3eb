"""Rule file errors: every one names the file, the line and the field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleProblem:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class RuleFileError(ValueError):
    """One or more problems in rule files (all of them, not just the first)."""

    def __init__(self, problems: list[RuleProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
