"""The password rule every account follows (accounts themselves: cunan.auth.service)."""

from __future__ import annotations

from cunan.registry.errors import InvalidRecordError

MIN_PASSWORD_LENGTH = 8


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRecordError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
