"""A small name -> object registry shared by models, datasets and measures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from genmeasures.errors import OptionError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to registered objects; unknown names raise an error listing the valid ones.

    ``entry_point_group`` names a ``[project.entry-points]`` group from which other installed
    packages may contribute entries; they are loaded on the first lookup.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._entry_point_group = entry_point_group
        self._entry_points_loaded = entry_point_group is None

    def add(self, name: str, obj: T, *, replace: bool = False) -> T:
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj
        return obj

    def decorator(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        def register(obj: T) -> T:
            return self.add(name, obj, replace=replace)

        return register

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        self._load_entry_points()
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries)) or "(none)"
            raise OptionError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        if self._entry_point_group is None:
            return  # no group: nothing to load (entry_points(group=None) matches nothing)
        for ep in entry_points(group=self._entry_point_group):
            # Loading the module is enough when it registers itself with a decorator;
            # an entry point that resolves to an unregistered object is added by its name.
            obj = ep.load()
            if ep.name not in self._entries:
                self.add(ep.name, obj)
