"""Networks built by name from the kwargs a bundle's config stores (timm's ``create_model`` style)."""

from __future__ import annotations

from collections.abc import Callable, Iterator


class Registry:
    """``@registry.register("name")`` on a builder; ``registry.create("name", **kwargs)`` builds it."""

    def __init__(self, what: str):
        self.what = what  # e.g. "stage-1 model", named in errors
        self._builders: dict[str, Callable] = {}

    def register(self, name: str):
        def deco(fn):
            if name in self._builders:
                raise ValueError(f"{self.what} {name!r} is already registered")
            self._builders[name] = fn
            return fn

        return deco

    def create(self, name: str, **kwargs):
        if name not in self._builders:
            raise KeyError(f"unknown {self.what} {name!r}; known: {', '.join(sorted(self._builders))}")
        return self._builders[name](**kwargs)

    def __contains__(self, name: object) -> bool:
        return name in self._builders

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._builders))
