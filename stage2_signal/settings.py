"""Shared (de)serialisation of the stage-2 settings dataclasses stored in a bundle's config.json."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import ClassVar


class Settings:
    """Mixin for frozen dataclasses: ``to_dict`` / ``from_dict`` that refuses unknown keys (a typo in a
    bundle's config must not silently fall back to a default)."""

    SECTION: ClassVar[str] = "settings"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None):
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown {cls.SECTION} settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)
