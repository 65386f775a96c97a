"""Explanation text for one classification: what the network detected, why the style fits, what the
confidence means. Pure functions of a ``random.Random`` and the label tables. No torch.

Sentences are drawn from banks of variants and assembled by one of several structures, so a model trained on
them must learn the facts (signatures, cues, relations) rather than one fixed sentence.

Every relational claim follows from the tables and the numbers (a test enumerates each family's variants):
"confused with" only between movements the tables relate, "lower"/"weakest" only when the numbers say so, "the
more likely reading" only when the artist head is the more confident one. Each confidence in the low band is
called low, each mismatch is flagged, and every number is written after a space (" 62.4%"), as in the prompt, so
that copying it is copying the same tokens.
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
LOW_BELOW = 70.0  # the "low" band: under it, an explanation must say the call is low / uncertain
HEADS = ("artist", "style", "genre")


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

    def conf(self, head: str) -> float:
        return self.a_conf if head == "artist" else self.s_conf if head == "style" else self.g_conf

    def label(self, head: str) -> str:
        return self.artist if head == "artist" else self.style if head == "style" else self.genre


def short_name(artist: str) -> str:
    return _SHORT.get(artist, artist.split()[-1])


def band(conf: float) -> str:
    """Confidence band: what a percentage means for the reader."""
    return "very high" if conf >= 90 else "high" if conf >= 80 else "moderate" if conf >= 70 else "low"


def pct(conf: float) -> str:
    """A confidence as the prompt writes it (one decimal)."""
    return f"{conf:.1f}%"


def via_style(c: Case) -> str | None:
    """The artist's own movement that the tables relate to the predicted one (what a classifier confuses it
    with), or None when the predicted movement is unrelated to all of theirs."""
    return next((s for s in ARTIST_TABLE[c.artist].styles if c.style in STYLE_TABLE[s].related), None)


_MEANING = {
    "very high": ("the network is close to certain", "this is a clear-cut case for the model",
                  "almost all of the probability mass sits on this answer", "the evidence is unambiguous"),
    "high": ("the model is confident, though not certain", "this is a strong prediction",
             "the evidence is clear with a little room for doubt", "a reliable call with minor competition"),
    "moderate": ("the model sees good evidence but also some competing signals",
                 "this is a plausible answer that deserves a second look",
                 "other classes still received a meaningful share of the probability",
                 "the features point this way, but not decisively"),
}
# What a low confidence means, worded per head: when two or three heads are low, each sentence about one of them
# says something no sentence about another can, so an explanation of several low heads never repeats a phrase (the
# checker's loop rule) however a model picks among them; greedy decoding, which picks the likeliest meaning every
# time, repeated one shared meaning per head when they were shared.
_LOW_MEANING = {
    "artist": ("another painter may well be the right answer", "the attribution is a tentative guess",
               "the network is unsure whose hand this is", "the evidence for this painter is weak"),
    "style": ("a neighbouring movement may well be the right one", "the movement is a tentative reading",
              "the network is unsure which school the picture belongs to", "the stylistic evidence is mixed"),
    "genre": ("the subject could as well be read as another category", "the subject type is an uncertain call",
              "other subject types kept a good part of the probability", "the cues for this genre are weak"),
}


def meaning_of(rng: random.Random, head: str, b: str) -> str:
    """What band ``b`` means for ``head``: one ``random()`` call."""
    return pick(rng, _LOW_MEANING[head] if b == "low" else _MEANING[b])


def pick(rng: random.Random, items: Sequence[T]) -> T:
    """A uniform choice from one ``random()`` call: ``rng.choice`` costs several Python-level calls, and a
    100K-pair dataset makes about two million draws. ``int(u * n) < n`` for every ``u < 1``."""
    return items[int(rng.random() * len(items))]


def pick2(rng: random.Random, items: Sequence[T]) -> tuple[T, T]:
    """Two different items, uniform over ordered pairs (``rng.sample(items, 2)`` at a fraction of the cost)."""
    n = len(items)
    i, j = int(rng.random() * n), int(rng.random() * (n - 1))
    return items[i], items[j + (j >= i)]


def variant(rng: random.Random, forms: Sequence[str], v: int | None) -> str:
    """Variant ``v`` of a family (the tests enumerate them), else a random one."""
    return forms[v] if v is not None else pick(rng, forms)


def detected(rng: random.Random, c: Case, v: int | None = None) -> str:
    """What in the image drove the artist prediction."""
    art, name = ARTIST_TABLE[c.artist], short_name(c.artist)
    s1, s2 = pick2(rng, art.signature)
    return variant(rng, (
        f"The network's strongest evidence for {c.artist} is the {s1} and the {s2}, both hallmarks of {name}'s work.",
        f"The classifier picked up {s1} together with {s2}, traits it has learned to associate with {c.artist}.",
        f"What points to {c.artist} is the combination of {s1} and {s2}.",
        f"Features such as {s1} and {s2} are typical of {name} ({art.era}), and the model weighted them heavily.",
        f"In this image the model detected {s1} and {s2}, two traits of {name}'s painting.",
    ), v)


def style_fit(rng: random.Random, c: Case, v: int | None = None) -> str:
    """Why the predicted movement fits the image (its cues + the idea behind them)."""
    st = STYLE_TABLE[c.style]
    q1, q2 = pick2(rng, st.cues)
    return variant(rng, (
        f"{c.style} fits because the painting shows {q1} and {q2}; in {c.style}, {st.idea}.",
        f"The style call rests on {q1} and {q2}, the defining cues of {c.style} ({st.period}).",
        f"{q1[0].upper() + q1[1:]} and {q2} are what the network reads as {c.style}, a movement in which {st.idea}.",
        f"{c.style} ({st.period}) is recognised from {q1} and {q2}: {st.idea}.",
    ), v)


def genre_fit(rng: random.Random, c: Case, v: int | None = None) -> str:
    g1, g2 = pick2(rng, GENRE_TABLE[c.genre].cues)
    typical = "one of the subjects he painted most" if c.genre_fits else "not his most typical subject"
    return variant(rng, (
        f"The {c.genre.lower()} label comes from {g1} and {g2}.",
        f"For the genre, {g1} and {g2} indicate {c.genre.lower()}, {typical}.",
        f"{c.genre} is suggested by {g1} and {g2}.",
    ), v)


def confidence(rng: random.Random, head: str, label: str, conf: float, v: int | None = None) -> str:
    b, p = band(conf), pct(conf)
    meaning = meaning_of(rng, head, b)
    return variant(rng, (
        f"{'An' if p.startswith(('8', '11', '18')) else 'A'} {p} {head} confidence is {b}: {meaning}.",
        f"At {p}, the {head} prediction ({label}) is {b}, meaning {meaning}.",
        f"The {p} score for {label} is {b}: {meaning}.",
    ), v)


def compare_to_artist(c: Case, head: str) -> str:
    """A true comparison of ``head``'s confidence with the others ("the least confident of the three", "less
    confident than the artist head"), or "" when neither holds."""
    x = c.conf(head)
    if x < min(c.conf(h) for h in HEADS if h != head):
        return f"at {pct(x)} it is the least confident of the three heads"
    if x < c.a_conf:
        return f"at {pct(x)} the {head} head is less confident than the artist head at {pct(c.a_conf)}"
    return ""


def style_mismatch(rng: random.Random, c: Case, v: int | None = None) -> str:
    """The predicted movement is not one of the artist's: say so, and why a classifier might have chosen it."""
    name, main, via = short_name(c.artist), ARTIST_TABLE[c.artist].styles[0], via_style(c)
    cue, cmp = pick(rng, STYLE_TABLE[c.style].cues), compare_to_artist(c, "style")
    if via is None:
        return variant(rng, (
            f"{c.artist} is not usually associated with {c.style}; he worked mainly in {main}, and the tables do "
            f"not relate the two movements, so this is an unusual combination{', and ' + cmp if cmp else ''}.",
            f"The style prediction ({c.style}, {pct(c.s_conf)}) does not match {name}'s usual {main}; {cue} may "
            f"have misled the style head, or the painting is an atypical work.",
        ), v)
    likely = (f" The artist head is the more confident one, so {via} is the more likely reading."
              if c.a_conf > c.s_conf else "")
    return variant(rng, (
        f"{c.artist} is not usually associated with {c.style}; he worked mainly in {main}. The network probably "
        f"saw {cue}, a cue of {c.style}, and classifiers often confuse {c.style} with {via}"
        f"{', and ' + cmp if cmp else ''}.",
        f"Note the tension: {name} belongs to {main}, yet the style head chose {c.style} at {pct(c.s_conf)}. "
        f"Classifiers often confuse {c.style} with {via}.{likely}",
        f"The style prediction ({c.style}, {pct(c.s_conf)}) does not match {name}'s usual {main}; the image may be "
        f"an atypical work, or {cue} misled the style head.",
    ), v)


def genre_mismatch(rng: random.Random, c: Case, v: int | None = None) -> str:
    name = short_name(c.artist)
    usual = " and ".join(g.lower() for g in ARTIST_TABLE[c.artist].genres[:2])
    cmp = compare_to_artist(c, "genre")
    return variant(rng, (
        f"{c.genre} is unusual for {name}, who mostly painted {usual}{', and ' + cmp if cmp else ''}.",
        f"The genre head says {c.genre.lower()} at {pct(c.g_conf)}, but {name} is known for {usual}, so "
        f"{c.genre.lower()} may be a misreading of the composition.",
    ), v)


def closing(rng: random.Random, c: Case, v: int | None = None) -> str:
    weakest = min(HEADS, key=c.conf)
    if min(c.a_conf, c.s_conf, c.g_conf) >= 85 and c.style_fits and c.genre_fits:
        return variant(rng, (
            "All three predictions agree with each other, which makes the overall classification very reliable.",
            f"Artist, style and genre are consistent, so this reads as a typical {short_name(c.artist)}.",
            "Taken together the three heads tell one coherent story.",
        ), v)
    x = pct(c.conf(weakest))
    return variant(rng, (
        f"The weakest link is the {weakest} prediction at {x}, so treat that part with caution.",
        f"Overall the reading is plausible, but the {weakest} head, the least confident at {x}, is the one to "
        "double-check.",
        f"If one prediction is wrong, it is most likely the {weakest}, the least confident at {x}.",
    ), v)


def mismatches(rng: random.Random, c: Case) -> list[str]:
    """Zero, one or two sentences naming what does not fit the artist."""
    out = [style_mismatch(rng, c)] if not c.style_fits else []
    return out + [genre_mismatch(rng, c)] if not c.genre_fits else out


def low_sentence(rng: random.Random, c: Case, v: int | None = None) -> str | None:
    """A sentence per head in the low band, calling it low, in head order (None when there is none). Always
    written, at one place (before the closing), whatever else the structure said: a fixed duty is easier to learn
    than "the low heads not explained yet". One sentence per head, not one sentence listing them, because that is
    how the prompt's ``Checks:`` line lists them ("artist low; style low"): each item is one sentence to write,
    as each mismatch is, whether one head is low (a fifth of the pairs) or all three (a quarter of a percent).
    Heads after the first never take the first head's wording, and each head's meaning is its own
    (``_LOW_MEANING``), so three low heads are three different sentences (the checker's loop rule)."""
    low = [h for h in HEADS if c.conf(h) < LOW_BELOW]
    if not low:
        return None
    if len(low) == 1:  # worded unlike `confidence`, which the structure may also have used for this head
        h, p, label = low[0], pct(c.conf(low[0])), c.label(low[0])
        meaning = meaning_of(rng, h, "low")
        return variant(rng, (
            f"The {h} call is the uncertain one: at {p} it is in the low band, and {meaning}.",
            f"Low confidence: the {h} head gives {label} only {p}, so {meaning}.",
            f"Treat the {h} ({label}, {p}) as low confidence: {meaning}.",
        ), v)
    first = int(rng.random() * 3) if v is None else v % 3
    out = []
    for i, h in enumerate(low):
        p, label, meaning = pct(c.conf(h)), c.label(h), meaning_of(rng, h, "low")
        out.append((
            f"Low confidence: the {h} head gives {label} only {p}; {meaning}.",
            f"Treat the {h} ({label}, {p}) as low confidence: {meaning}.",
            f"The {h} prediction ({label}) is low as well, at {p}: {meaning}." if i else
            f"The {h} prediction ({label}) is low, at {p}: {meaning}.",
        )[(first + i) % 3])
    return " ".join(out)


_SENTENCES = {
    "det": detected, "sty": style_fit, "gen": genre_fit, "end": closing,
    "conf_a": lambda rng, c: confidence(rng, "artist", c.artist, c.a_conf),
    "conf_s": lambda rng, c: confidence(rng, "style", c.style, c.s_conf),
}
# Orderings of the sentence kinds ("mism": the mismatch sentences, if any; "low": the sentence calling every low
# head low, if any, always just before the closing); every one names the artist (det) and the style (sty).
STRUCTURES = (
    ("det", "conf_a", "sty", "gen", "mism", "low", "end"),
    ("sty", "det", "mism", "gen", "conf_a", "low", "end"),
    ("det", "sty", "mism", "conf_s", "gen", "low", "end"),
    ("conf_a", "det", "sty", "gen", "mism", "low"),
    ("det", "gen", "sty", "mism", "conf_a", "conf_s", "low"),
    ("sty", "conf_s", "det", "conf_a", "mism", "gen", "low", "end"),
    ("det", "mism", "sty", "gen", "low", "end"),
)


def explain(rng: random.Random, c: Case, structure: Sequence[str] | None = None) -> str:
    """One explanation for ``c``: an ordering of the sentence kinds is drawn first (or given), then only the
    sentences it uses are written."""
    parts: list[str] = []
    for kind in structure or pick(rng, STRUCTURES):
        if kind == "mism":
            parts += mismatches(rng, c)
        elif kind == "low":
            if (low := low_sentence(rng, c)) is not None:
                parts.append(low)
        else:
            parts.append(_SENTENCES[kind](rng, c))
    return " ".join(parts)
