"""Destination secrets in events: sealed with Fernet under the deployment's key, unsealed only by the encoder."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from smartcrop.core.errors import ErrorCode, SmartcropError
from smartcrop.core.job import Secret


class SecretKeyError(SmartcropError, RuntimeError):
    code = ErrorCode.INVALID_JOB


class SecretBox:
    def __init__(self, key: str | bytes | None):
        self._fernet = Fernet(key) if key else None

    @classmethod
    def ephemeral(cls) -> "SecretBox":
        """A throw-away key for one process (embedded runs never persist events)."""
        return cls(Fernet.generate_key())

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, secret: Secret) -> str:
        if secret.sealed:
            return secret.value
        if self._fernet is None:
            raise SecretKeyError("destination.secret cannot be carried: SMARTCROP_SECRET_KEY is not configured")
        return self._fernet.encrypt(secret.value.encode()).decode()

    def unseal(self, secret: Secret) -> str:
        if not secret.sealed:
            return secret.value
        if self._fernet is None:
            raise SecretKeyError("destination.secret is sealed but SMARTCROP_SECRET_KEY is not configured")
        try:
            return self._fernet.decrypt(secret.value.encode()).decode()
        except InvalidToken:
            raise SecretKeyError("destination.secret was sealed with a different SMARTCROP_SECRET_KEY") from None
