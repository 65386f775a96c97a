"""Explanation text for one classification: what the network detected, why the style fits, what the
confidence means. Pure functions of a ``random.Random`` and the label tables. No torch.

Sentences are drawn from banks of variants and assembled by one of several structures, so a model trained on
them must learn the facts (signatures, cues, relations) rather than one fixed sentence.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from core.explain.labels import ARTIST_TABLE, GENRE_TABLE, STYLE_TABLE

T = TypeVar("T")
_SHORT = {"Leonardo da Vinci": "Leonardo", "Vincent van Gogh": "Van Gogh", "Jan van Eyck": "Van Eyck",
          "El Greco": "El Greco", "J. M. W. Turner": "Turner", "Katsushika Hokusai": "Hokusai",
          "Rembrandt": "Rembrandt", "Caravaggio": "Caravaggio"}


@dataclass(slots=True)
class Case:
    """One classification to explain (confidences in percent). Not frozen: a frozen dataclass's ``__init__``
    costs 4x more, once per generated pair."""

    artist: str
    a_conf: float
    style: str
    s_conf: float
    genre: str
    g_conf: float

    @property
    def style_fits(self) -> bool:
        return self.style in ARTIST_TABLE[self.artist].styles

    @property
    def genre_fits(self) -> bool:
        return self.genre in ARTIST_TABLE[self.artist].genres


def short_name(artist: str) -> str:
    return _SHORT.get(artist, artist.split()[-1])


def band(conf: float) -> str:
    """Confidence band: what a percentage means for the reader."""
    return "very high" if conf >= 90 else "high" if conf >= 80 else "moderate" if conf >= 70 else "low"


_MEANING = {
    "very high": ("the network is close to certain", "this is a clear-cut case for the model",
                  "almost all of the probability mass sits on this answer", "the evidence is unambiguous"),
    "high": ("the model is confident, though not certain", "this is a strong prediction",
             "the evidence is clear with a little room for doubt", "a reliable call with minor competition"),
    "moderate": ("the model sees good evidence but also some competing signals",
                 "this is a plausible answer that deserves a second look",
                 "a neighbouring class still received a meaningful share of the probability",
                 "the features point this way, but not decisively"),
    "low": ("the model is unsure and its second choice may well be right",
            "this is a tentative guess rather than a firm identification",
            "the probability is spread across several classes",
            "the visual evidence is mixed or weak"),
}


def pick(rng: random.Random, items: Sequence[T]) -> T:
    """A uniform choice from one ``random()`` call: ``rng.choice`` costs several Python-level calls, and a
    100K-pair dataset makes about two million draws. ``int(u * n) < n`` for every ``u < 1``."""
    return items[int(rng.random() * len(items))]


def pick2(rng: random.Random, items: Sequence[T]) -> tuple[T, T]:
    """Two different items, uniform over ordered pairs (``rng.sample(items, 2)`` at a fraction of the cost)."""
    n = len(items)
    i, j = int(rng.random() * n), int(rng.random() * (n - 1))
    return items[i], items[j + (j >= i)]


def detected(rng: random.Random, c: Case) -> str:
    """What in the image drove the artist prediction."""
    art, name = ARTIST_TABLE[c.artist], short_name(c.artist)
    s1, s2 = pick2(rng, art.signature)
    return pick(rng, (
        f"The network's strongest evidence for {c.artist} is the {s1} and the {s2}, both hallmarks of {name}'s work.",
        f"The classifier picked up {s1} together with {s2}, traits it has learned to associate with {c.artist}.",
        f"What points to {c.artist} is the combination of {s1} and {s2}.",
        f"Features such as {s1} and {s2} are typical of {name} ({art.era}), and the model weighted them heavily.",
        f"In this image the model detected {s1} and {s2}; in its training data these most often belong to {name}.",
    ))


def style_fit(rng: random.Random, c: Case) -> str:
    """Why the predicted movement fits (cues + the idea behind them)."""
    st = STYLE_TABLE[c.style]
    q1, q2 = pick2(rng, st.cues)
    return pick(rng, (
        f"{c.style} fits because the painting shows {q1} and {q2}; in {c.style}, {st.idea}.",
        f"The style call rests on {q1} and {q2}, the defining cues of {c.style} ({st.period}).",
        f"{q1[0].upper() + q1[1:]} and {q2} are what the network reads as {c.style}, a movement in which {st.idea}.",
        f"{c.style} ({st.period}) is recognised from {q1} and {q2}: {st.idea}.",
    ))


def genre_fit(rng: random.Random, c: Case) -> str:
    g1, g2 = pick2(rng, GENRE_TABLE[c.genre].cues)
    typical = "one of the subjects he painted most" if c.genre_fits else "not his most typical subject"
    return pick(rng, (
        f"The {c.genre.lower()} label comes from {g1} and {g2}.",
        f"For the genre, {g1} and {g2} indicate {c.genre.lower()}, {typical}.",
        f"{c.genre} is suggested by {g1} and {g2}.",
    ))


def confidence(rng: random.Random, head: str, label: str, conf: float) -> str:
    b, pct = band(conf), f"{conf:.1f}"
    meaning = pick(rng, _MEANING[b])
    return pick(rng, (
        f"{'An' if pct.startswith('8') else 'A'} {pct}% {head} confidence is {b}: {meaning}.",
        f"At {pct}%, the {head} prediction ({label}) is {b}, meaning {meaning}.",
        f"The {pct}% score for {label} means {meaning}.",
    ))


def style_mismatch(rng: random.Random, c: Case) -> str:
    art, name = ARTIST_TABLE[c.artist], short_name(c.artist)
    main = art.styles[0]
    cue = pick(rng, STYLE_TABLE[c.style].cues)
    return pick(rng, (
        f"{c.artist} is not usually associated with {c.style}; he worked mainly in {main}. The lower style "
        f"confidence ({c.s_conf:.1f}%) suggests the network saw {cue}, which {c.style} shares with {main}.",
        f"Note the tension: {name} belongs to {main}, yet the style head chose {c.style} at only {c.s_conf:.1f}%. "
        f"Classifiers often confuse these movements, so {main} is the more likely reading.",
        f"The style prediction ({c.style}, {c.s_conf:.1f}%) does not match {name}'s usual {main}; the image may be "
        f"an atypical work, or {cue} misled the style head.",
    ))


def genre_mismatch(rng: random.Random, c: Case) -> str:
    art, name = ARTIST_TABLE[c.artist], short_name(c.artist)
    usual = " and ".join(g.lower() for g in art.genres[:2])
    return pick(rng, (
        f"{c.genre} is unusual for {name}, who mostly painted {usual}, which is consistent with the lower genre "
        f"confidence of {c.g_conf:.1f}%.",
        f"The genre head is less sure ({c.g_conf:.1f}%): {name} is known for {usual}, so {c.genre.lower()} "
        f"may be a misreading of the composition.",
    ))


def closing(rng: random.Random, c: Case) -> str:
    weakest = min((c.a_conf, "artist"), (c.s_conf, "style"), (c.g_conf, "genre"))
    if min(c.a_conf, c.s_conf, c.g_conf) >= 85 and c.style_fits and c.genre_fits:
        return pick(rng, (
            "All three predictions agree with each other, which makes the overall classification very reliable.",
            f"Artist, style and genre are consistent, so this reads as a typical {short_name(c.artist)}.",
            "Taken together the three heads tell one coherent story.",
        ))
    return pick(rng, (
        f"The weakest link is the {weakest[1]} prediction ({weakest[0]:.1f}%), so treat that part with caution.",
        f"Overall the reading is plausible, but the {weakest[1]} head is the one to double-check.",
        f"If one prediction is wrong, it is most likely the {weakest[1]} ({weakest[0]:.1f}%).",
    ))


def mismatches(rng: random.Random, c: Case) -> list[str]:
    """Zero, one or two sentences naming what does not fit the artist."""
    out = [style_mismatch(rng, c)] if not c.style_fits else []
    return out + [genre_mismatch(rng, c)] if not c.genre_fits else out


_SENTENCES = {
    "det": detected, "sty": style_fit, "gen": genre_fit, "end": closing,
    "conf_a": lambda rng, c: confidence(rng, "artist", c.artist, c.a_conf),
    "conf_s": lambda rng, c: confidence(rng, "style", c.style, c.s_conf),
}
# Orderings of the sentence kinds ("mism": the mismatch sentences, if any); every one names the artist (det)
# and the style (sty).
_STRUCTURES = (
    ("det", "conf_a", "sty", "gen", "mism", "end"),
    ("sty", "det", "mism", "gen", "conf_a", "end"),
    ("det", "sty", "mism", "conf_s", "gen", "end"),
    ("conf_a", "det", "sty", "gen", "mism"),
    ("det", "gen", "sty", "mism", "conf_a", "conf_s"),
    ("sty", "conf_s", "det", "conf_a", "mism", "gen", "end"),
    ("det", "mism", "sty", "gen", "end"),
)


def explain(rng: random.Random, c: Case) -> str:
    """One explanation for ``c``: an ordering of the sentence kinds is drawn first, then only the sentences
    it uses are written."""
    parts: list[str] = []
    for kind in pick(rng, _STRUCTURES):
        if kind == "mism":
            parts += mismatches(rng, c)
        else:
            parts.append(_SENTENCES[kind](rng, c))
    return " ".join(parts)
