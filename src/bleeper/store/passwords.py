"""Password hashing with argon2id. Hashing is slow on purpose, so the server runs it off the event loop."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters

MIN_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problem(password: str) -> str | None:
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters"
    if password.strip() != password or "\n" in password:
        return "no leading or trailing spaces, and no line breaks"
    return None
