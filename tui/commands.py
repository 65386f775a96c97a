"""The command palette (``ctrl+p``): every dashboard key as a searchable command, read from the bindings
(:mod:`tui.keymap`)."""

from __future__ import annotations

from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider


class NcanvasCommands(Provider):
    """Matches the palette's query against ``area: what the key does``."""

    def _entries(self) -> list[Any]:
        from tui.keymap import entries

        return [e for e in entries() if e.target is not None]

    def _callback(self, entry: Any):  # noqa: ANN202 - a zero-argument callable
        app = self.app
        if entry.target == "app":
            return partial(app.call_later, app.run_action, entry.action)

        async def run() -> None:
            app.action_pane(entry.pane)  # type: ignore[attr-defined]
            await app.query_one(entry.target).run_action(entry.action)

        return partial(app.call_later, run)

    @staticmethod
    def _title(entry: Any) -> str:
        return f"{entry.area}: {entry.tooltip}"

    @staticmethod
    def _help(entry: Any) -> str:
        return "key: " + " / ".join(entry.keys)

    async def discover(self) -> Hits:
        for entry in self._entries():
            yield DiscoveryHit(self._title(entry), self._callback(entry), help=self._help(entry))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry in self._entries():
            title = self._title(entry)
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), self._callback(entry), help=self._help(entry))
