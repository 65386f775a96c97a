"""The art label sets, shared with the explanation dataset: one table for both (core.explain.labels). No torch."""

from __future__ import annotations

try:
    from core.explain.labels import ARTISTS, GENRES, STYLES, artist_genres, artist_styles  # noqa: F401
except ImportError:  # pragma: no cover - interim table until core.explain lands
    ARTISTS = tuple(f"Artist {i}" for i in range(25))
    STYLES = tuple(f"Style {i}" for i in range(27))
    GENRES = tuple(f"Genre {i}" for i in range(19))

    def artist_styles(artist: str) -> tuple[str, ...]:
        i = ARTISTS.index(artist)
        return (STYLES[i % 27], STYLES[(i * 7 + 3) % 27])

    def artist_genres(artist: str) -> tuple[str, ...]:
        i = ARTISTS.index(artist)
        return (GENRES[i % 19], GENRES[(i * 5 + 2) % 19], GENRES[(i * 11 + 7) % 19])

HEADS = ("artist", "style", "genre")
LABELS = {"artist": ARTISTS, "style": STYLES, "genre": GENRES}
