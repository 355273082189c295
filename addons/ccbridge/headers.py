"""Read captured headers by name, ignoring case: the one lookup for header pairs kept outside a flow."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping


class HeaderView(Mapping[str, str]):
    """A read-only, case-insensitive mapping over header pairs; a repeated name gives its first value.

    Names iterate lower-cased. Where a mitmproxy flow is at hand its own `Headers` already do this.
    """

    __slots__ = ("_first",)

    def __init__(self, pairs: Iterable[tuple[str, str]] | Iterable[list[str]] | None) -> None:
        first: dict[str, str] = {}
        for name, value in pairs or ():
            first.setdefault(name.lower(), value)
        self._first = first

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

