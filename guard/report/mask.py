"""Secrets never reach output: every rendered string passes through a Masker."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote


class Masker:
    """Replaces each known secret (and its URL-encoded forms) with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        # Shorter strings would mask ordinary words; config never yields such secrets.
        if not secret or len(secret) < 4:
            return
        forms = {*self._forms, secret, quote(secret, safe=""), quote(secret)}
        # Longest first, so a secret containing another is replaced whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, "***")
        return text
