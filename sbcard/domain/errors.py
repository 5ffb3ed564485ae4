"""Domain errors: each carries a stable code, the field it is about and a message.

The CLI maps them to one line on stderr and an exit code (DESIGN.md): input that is
malformed is a usage error (2); input that is well formed but refused by a rule (a lost
card, insufficient balance) is a refusal (1).
"""

from __future__ import annotations


class SbcardError(Exception):
    """Base of every error the project raises on purpose."""

    exit_code = 3

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message

    def __str__(self) -> str:
        if self.field:
            return f"{self.field}: {self.message}"
        return self.message


class InvalidInput(SbcardError):
    """A value that cannot be what it claims to be (bad check digit, impossible date)."""

    exit_code = 2


class RuleRefused(SbcardError):
    """A well-formed request that a rule of the service refuses."""

    exit_code = 1


class NotFound(SbcardError):
    """A referenced thing (card, person, outlet) does not exist."""

    exit_code = 2
