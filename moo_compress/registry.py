"""A small name -> object registry whose errors list close matches and every valid name."""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from moo_compress.errors import UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind (models, datasets, corruptions...).

    Args:
        kind: What the names denote, used in error messages ("architecture", "corruption").
        natural_order: List names in natural sort order (``resnet20`` before ``resnet110``) instead
            of registration order.
    """

    def __init__(self, kind: str, *, natural_order: bool = False) -> None:
        self.kind = kind
        self.natural_order = natural_order
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        """Adds ``obj`` under ``name``; a name can be registered once."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def decorator(self, name: str) -> Callable[[T], T]:
        """Returns a decorator that registers the decorated object under ``name``."""

        def wrap(obj: T) -> T:
            return self.register(name, obj)

        return wrap

    def get(self, name: str) -> T:
        """Returns the object registered under ``name``.

        Raises:
            UnknownNameError: if the name is unknown; the message lists close matches and all names.
        """
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """The one-line message used when ``name`` is not registered."""
        close = difflib.get_close_matches(str(name), list(self._items), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (valid: {', '.join(self.names())})"

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names in registration order, optionally filtered by a glob ``pattern``."""
        names = list(self._items)
        if self.natural_order:
            names.sort(key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])
        if pattern is None:
            return names
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
