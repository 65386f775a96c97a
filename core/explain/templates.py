"""Explanation text for one classification: what the network detected, why the style fits, what the
confidence means. Pure functions of a ``random.Random`` and the label tables. No torch.

Sentences are drawn from banks of variants and assembled by one of several structures, so a model trained on
them must learn the facts (signatures, cues, relations) rather than one fixed sentence.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from core.explain.labels import ARTIST_TABLE, GENRE_TABLE, STYLE_TABLE

_SHORT = {"Leonardo da Vinci": "Leonardo", "Vincent van Gogh": "Van Gogh", "Jan van Eyck": "Van Eyck",
          "El Greco": "El Greco", "J. M. W. Turner": "Turner", "Katsushika Hokusai": "Hokusai",
          "Rembrandt": "Rembrandt", "Caravaggio": "Caravaggio"}


@dataclass(frozen=True)
class Case:
    """One classification to explain (confidences in percent)."""

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


def _pick2(rng: random.Random, items: tuple[str, ...]) -> tuple[str, str]:
    a, b = rng.sample(items, 2)
    return a, b


def detected(rng: random.Random, c: Case) -> str:
    """What in the image drove the artist prediction."""
    art, name = ARTIST_TABLE[c.artist], short_name(c.artist)
    s1, s2 = _pick2(rng, art.signature)
    return rng.choice((
        f"The network's strongest evidence for {c.artist} is the {s1} and the {s2}, both hallmarks of {name}'s work.",
        f"The classifier picked up {s1} together with {s2}, traits it has learned to associate with {c.artist}.",
        f"What points to {c.artist} is the combination of {s1} and {s2}.",
        f"Features such as {s1} and {s2} are typical of {name} ({art.era}), and the model weighted them heavily.",
        f"In this image the model detected {s1} and {s2}; in its training data these most often belong to {name}.",
    ))


def style_fit(rng: random.Random, c: Case) -> str:
    """Why the predicted movement fits (cues + the idea behind them)."""
    st = STYLE_TABLE[c.style]
    q1, q2 = _pick2(rng, st.cues)
    return rng.choice((
        f"{c.style} fits because the painting shows {q1} and {q2}; in {c.style}, {st.idea}.",
        f"The style call rests on {q1} and {q2}, the defining cues of {c.style} ({st.period}).",
        f"{q1[0].upper() + q1[1:]} and {q2} are what the network reads as {c.style}, a movement in which {st.idea}.",
        f"{c.style} ({st.period}) is recognised from {q1} and {q2}: {st.idea}.",
    ))


def genre_fit(rng: random.Random, c: Case) -> str:
    g1, g2 = _pick2(rng, GENRE_TABLE[c.genre].cues)
    typical = "one of the subjects he painted most" if c.genre_fits else "not his most typical subject"
    return rng.choice((
        f"The {c.genre.lower()} label comes from {g1} and {g2}.",
        f"For the genre, {g1} and {g2} indicate {c.genre.lower()}, {typical}.",
        f"{c.genre} is suggested by {g1} and {g2}.",
    ))


def confidence(rng: random.Random, head: str, label: str, conf: float) -> str:
    b = band(conf)
    meaning = rng.choice(_MEANING[b])
    return rng.choice((
        f"A {conf:.1f}% {head} confidence is {b}: {meaning}.",
        f"At {conf:.1f}%, the {head} prediction ({label}) is {b}, meaning {meaning}.",
        f"The {conf:.1f}% score for {label} means {meaning}.",
    ))


def style_mismatch(rng: random.Random, c: Case) -> str:
    art, name = ARTIST_TABLE[c.artist], short_name(c.artist)
    main = art.styles[0]
    cue = rng.choice(STYLE_TABLE[c.style].cues)
    return rng.choice((
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
    return rng.choice((
        f"{c.genre} is unusual for {name}, who mostly painted {usual}, which is consistent with the lower genre "
        f"confidence of {c.g_conf:.1f}%.",
        f"The genre head is less sure ({c.g_conf:.1f}%): {name} is known for {usual}, so {c.genre.lower()} "
        f"may be a misreading of the composition.",
    ))


def closing(rng: random.Random, c: Case) -> str:
    weakest = min((c.a_conf, "artist"), (c.s_conf, "style"), (c.g_conf, "genre"))
    if min(c.a_conf, c.s_conf, c.g_conf) >= 85 and c.style_fits and c.genre_fits:
        return rng.choice((
            "All three predictions agree with each other, which makes the overall classification very reliable.",
            f"Artist, style and genre are consistent, so this reads as a typical {short_name(c.artist)}.",
            "Taken together the three heads tell one coherent story.",
        ))
    return rng.choice((
        f"The weakest link is the {weakest[1]} prediction ({weakest[0]:.1f}%), so treat that part with caution.",
        f"Overall the reading is plausible, but the {weakest[1]} head is the one to double-check.",
        f"If one prediction is wrong, it is most likely the {weakest[1]} ({weakest[0]:.1f}%).",
    ))


def explain(rng: random.Random, c: Case) -> str:
    """One explanation for ``c``; the structure is drawn from several orderings of the sentence kinds."""
    det, sty, gen = detected(rng, c), style_fit(rng, c), genre_fit(rng, c)
    conf_a = confidence(rng, "artist", c.artist, c.a_conf)
    conf_s = confidence(rng, "style", c.style, c.s_conf)
    mism = [style_mismatch(rng, c)] if not c.style_fits else []
    mism += [genre_mismatch(rng, c)] if not c.genre_fits else []
    end = closing(rng, c)
    structures = (
        [det, conf_a, sty, gen, *mism, end],
        [sty, det, *mism, gen, conf_a, end],
        [det, sty, *mism, conf_s, gen, end],
        [conf_a, det, sty, gen, *mism],
        [det, gen, sty, *mism, conf_a, conf_s],
        [sty, conf_s, det, conf_a, *mism, gen, end],
        [det, *mism, sty, gen, end],
    )
    return " ".join(rng.choice(structures))
