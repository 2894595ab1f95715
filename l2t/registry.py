"""A small name -> factory registry, one per family (students, losses, teachers, ...)."""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from l2t.errors import L2TError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories. ``create`` with an unknown name lists the known ones."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._factories: dict[str, Callable[..., T]] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator; ``meta`` are facts about the entry that callers may ask for (:meth:`meta`)."""
        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            self._factories[name] = factory
            self._meta[name] = meta
            return factory

        return deco

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)  # an unknown name is the usual error
        return self._meta[name]

    def describe(self, name: str) -> str:
        """One line about the entry (for ``l2t list`` and help texts): its ``doc`` meta, else the
        first line of its docstring."""
        doc = self.meta(name).get("doc") or self.get(name).__doc__ or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def usage(self, name: str) -> str:
        """The entry as it is typed (``truncated:K``): its ``usage`` meta, else its name."""
        return self.meta(name).get("usage", name)

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(sorted(self._factories))
            raise L2TError(f"unknown {self.family} {name!r}; known: {known}") from None

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def list(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
