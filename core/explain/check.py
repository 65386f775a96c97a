"""The grounding checker: does an explanation say what the CNN output says, and nothing it does not? No torch.

``check(text, case)`` returns one :class:`Verdict` per fact, in a :class:`CheckResult` that serialises to JSON:

- ``artist`` / ``style`` / ``genre``: the predicted label is named. Full names always count; an artist also by the
  short name the templates use (``Monet``, ``Van Gogh``) because each of those identifies one of the 25 artists;
  a movement also by its ``-ist`` form (``Impressionist``). Names are matched whole (``Impressionism`` inside
  ``Post-Impressionism`` does not count), case-insensitively.
- ``numbers``: every stated percentage (and bare decimal) equals one of the three confidences at the precision it
  is written with (``96.2%`` to 0.1, ``96%`` to 1; a decimal <= 1 is read as a probability).
- ``claims``: no other artist is named, and no other movement sits where the prediction goes (``X fits because``,
  ``the style head chose X``, ``X (62.1%)``, ...). Other movements may be named elsewhere only when the tables make
  them relevant: the artist's own movements ("he worked mainly in Impressionism"), movements related to the
  predicted one, or words inside the predicted movement's own description (Synthetic Cubism's "early Cubism").
- ``low_confidence``: each confidence below ``LOW_BELOW`` (the templates' "low" band) is called low or uncertain in
  a sentence about that head, and no sentence about it (or about all three) uses high-certainty wording.
- ``style_mismatch`` / ``genre_mismatch``: a movement or genre that is not the artist's (per the label tables) is
  flagged, nothing claims the three agree, and a fitting one is not called a mismatch.
- ``ending``: the text ends on a sentence and does not loop (no repeated sentence, no 10-word run three times).

A fact that does not apply (no low confidence, no mismatch, an artist not in the tables) is ``applies=False`` and
counts as passed. Why rules and not a model: the verdict must be cheap (it runs on every explanation shown and at
every validation), deterministic and explainable in one line per failed fact.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from core.explain.labels import ARTIST_TABLE, ARTISTS, GENRE_TABLE, GENRES, STYLE_TABLE, STYLES

HEADS = ("artist", "style", "genre")
LOW_BELOW = 70.0  # the templates' "low" band (core.explain.templates.band); kept in step by a test
FACTS = ("artist", "style", "genre", "numbers", "claims", "low_confidence", "style_mismatch", "genre_mismatch",
         "ending")

# Short names the templates use; every one identifies exactly one artist of the table (a test checks this).
SHORT_NAMES = {"Leonardo da Vinci": ("Leonardo", "da Vinci"), "Vincent van Gogh": ("Van Gogh",),
               "Jan van Eyck": ("Van Eyck",), "J. M. W. Turner": ("Turner", "J.M.W. Turner"),
               "Katsushika Hokusai": ("Hokusai",)}


@dataclass(frozen=True)
class Verdict:
    """One fact's verdict: ``ok`` (true when the fact does not apply), a one-line ``detail`` and, for numbers,
    one item per stated number."""

    ok: bool
    applies: bool = True
    detail: str = ""
    items: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "applies": self.applies, "detail": self.detail}
        if self.items:
            out["items"] = [dict(i) for i in self.items]
        return out


@dataclass(frozen=True)
class CheckResult:
    facts: dict[str, Verdict]

    @property
    def passed(self) -> bool:
        return all(v.ok for v in self.facts.values())

    @property
    def reasons(self) -> list[str]:
        """One line per failed fact."""
        return [f"{k}: {v.detail}" for k, v in self.facts.items() if not v.ok]

    @property
    def score(self) -> int:
        """Facts passed (for choosing the best of several texts)."""
        return sum(v.ok for v in self.facts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"pass": self.passed, "facts": {k: v.to_dict() for k, v in self.facts.items()},
                "reasons": self.reasons}


@dataclass(frozen=True)
class Output:
    """What the CNN said: top-1 label and confidence (percent) per head."""

    artist: str
    style: str
    genre: str
    confidences: tuple[float, float, float]

    def conf(self, head: str) -> float:
        return self.confidences[HEADS.index(head)]

    def label(self, head: str) -> str:
        return {"artist": self.artist, "style": self.style, "genre": self.genre}[head]


def as_output(case: Any) -> Output:
    """An :class:`Output` from itself, a templates ``Case`` or a mapping ``{artist, style, genre, confidences}``."""
    if isinstance(case, Output):
        return case
    if isinstance(case, dict):
        a, s, g = (float(x) for x in case["confidences"])
        return Output(case["artist"], case["style"], case["genre"], (a, s, g))
    return Output(case.artist, case.style, case.genre, (case.a_conf, case.s_conf, case.g_conf))


# ------------------------------------------------------------------------------------------------ names


def _fold(s: str) -> str:
    """Accents off (Dürer = Durer, Cézanne = Cezanne), so a text typed without them still names the label."""
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def aliases(label: str, head: str) -> tuple[str, ...]:
    """The spellings that name ``label``: the name, the templates' short name for artists, ``-ist`` for movements,
    the plural for genres."""
    names = [label]
    if head == "artist":
        names += SHORT_NAMES.get(label, (label.split()[-1],))
    elif head == "style" and label.endswith("ism"):
        names.append(label[:-3] + "ist")
    elif head == "genre":
        names.append(label + "s")  # "landscapes", "portraits"
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Mention:
    head: str
    label: str
    start: int
    end: int


@cache
def _name_pattern(extra: tuple[tuple[str, str], ...]) -> tuple[re.Pattern[str], dict[str, tuple[str, str]]]:
    """One regex over every name (longest first, so the leftmost-longest match wins), and name -> (head, label)."""
    table: dict[str, tuple[str, str]] = {}
    for head, labels in (("style", STYLES), ("artist", ARTISTS), ("genre", GENRES)):
        for label in labels:
            for name in aliases(label, head):
                table.setdefault(_fold(name).lower(), (head, label))
    for head, label in extra:  # labels of a CNN whose classes are not the shared tables'
        for name in aliases(label, head):
            table.setdefault(_fold(name).lower(), (head, label))
    names = sorted(table, key=len, reverse=True)
    body = "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in names)
    return re.compile(rf"(?<![\w-])(?:{body})(?![\w-])"), table


def mentions(text: str, out: Output | None = None) -> list[Mention]:
    """Every label name in ``text`` (folded text has the same length, so spans index the original)."""
    extra = tuple((h, out.label(h)) for h in HEADS if out is not None and out.label(h) not in _TABLES[h])
    pattern, table = _name_pattern(extra)
    folded = _fold(text).lower()
    if len(folded) != len(text):  # a character that folds to several: fall back to unspanned matching
        folded = text.lower()
    found = []
    for m in pattern.finditer(folded):
        key = re.sub(r"\s+", " ", m.group(0))
        if key in table:
            head, label = table[key]
            found.append(Mention(head, label, m.start(), m.end()))
    return found


_TABLES = {"artist": set(ARTISTS), "style": set(STYLES), "genre": set(GENRES)}


# ------------------------------------------------------------------------------------------------ sentences

_SENT_END = re.compile(r"(?<![A-Z]\.)(?<!\bc\.)(?<!\bJ\.)(?<=[.!?])[\"')\]]*\s+")


def sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans; "J. M. W. Turner" and "c. 1490" do not end a sentence."""
    spans, start = [], 0
    for m in _SENT_END.finditer(text):
        spans.append((start, m.start() + len(m.group(0).rstrip())))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


# ------------------------------------------------------------------------------------------------ numbers

_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d+)?)(\s*(?:%|percent\b|per cent\b))?")


@dataclass(frozen=True)
class Number:
    value: float   # in percent
    text: str
    start: int
    end: int
    decimals: int


def numbers(text: str) -> list[Number]:
    """Percentages and bare decimals (``96.2%``, ``96.2 percent``, ``96.2``, ``0.962``); integers without a
    percent sign (years, "15th", "three") are not confidences and are skipped."""
    out = []
    for m in _NUMBER.finditer(text):
        digits, pct = m.group(1), m.group(2)
        if not pct and "." not in digits:
            continue
        if not pct and text[m.end():m.end() + 1].isdigit():
            continue
        if not pct and re.match(r"\d{3,}", digits):
            continue  # a year range fragment, e.g. "1490.": not a confidence
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        value = float(digits)
        if not pct and value <= 1.0 and decimals >= 2:  # a probability written as a fraction
            value, decimals = value * 100, max(decimals - 2, 0)
        out.append(Number(value, m.group(0), m.start(), m.end(), decimals))
    return out


def matching_head(value: float, decimals: int, out: Output) -> str | None:
    """The head whose confidence ``value`` states at its written precision (96.2 to 0.1; 96 to 1)."""
    tol = 0.5 * 10 ** -decimals + 1e-6
    best = min(HEADS, key=lambda h: abs(out.conf(h) - value))
    return best if abs(out.conf(best) - value) <= tol else None


def _check_numbers(text: str, out: Output) -> Verdict:
    items, wrong = [], []
    for n in numbers(text):
        head = matching_head(n.value, n.decimals, out)
        items.append({"text": n.text.strip(), "value": round(n.value, 4), "ok": head is not None, "head": head})
        if head is None:
            wrong.append(n.text.strip())
    detail = f"not a confidence of the prompt: {', '.join(wrong)}" if wrong else f"{len(items)} number(s) stated"
    return Verdict(not wrong, True, detail, tuple(items))


# ------------------------------------------------------------------------------------------------ claims

# A movement right after these words, or right before these, is where the prediction goes.
_SLOT_BEFORE = re.compile(
    r"(?:predict\w*|chose|chosen|choose|picked|classif\w*(?:\s+\w+)?\s+as|recogni[sz]ed\s+as|reads?\s+as|"
    r"identified\s+as|labell?ed\s+as|cues\s+of|score\s+for|not\s+(?:\w+\s+)?associated\s+with|prediction\s+of|"
    r"prediction\s+is|(?:the|predicted)\s+(?:style|movement)(?:\s+call|\s+label)?\s+is|call\s+of)\s*[(:]?\s*$",
    re.I)
_PCT = r"\d{1,3}(?:\.\d+)?\s*%"
_SLOT_AFTER = re.compile(
    rf"^\s*(?:\([^)]*\)\s*)?(?:fits\b|is\s+recogni[sz]ed|is\s+suggested|is\s+the\s+(?:predicted|style|answer)|"
    rf"\(\s*{_PCT}|,\s*{_PCT}|\s+at\s+{_PCT}|\s+{_PCT})", re.I)


def _described(out: Output) -> list[str]:
    """The predicted movement's own phrases: words there name other movements legitimately."""
    st = STYLE_TABLE.get(out.style)
    return [*st.cues, st.idea, st.period] if st else []


def _descriptions(out: Output) -> list[str]:
    """Every table phrase an explanation may quote about this output (cues, ideas, signatures): their words
    ("tension" in Mannerism's idea, "high-key palette") are facts about the labels, not wording about the
    confidence or a mismatch."""
    phrases = list(_described(out))
    if (art := ARTIST_TABLE.get(out.artist)) is not None:
        phrases += [*art.signature, art.era]
    if (genre := GENRE_TABLE.get(out.genre)) is not None:
        phrases += list(genre.cues)
    return sorted(phrases, key=len, reverse=True)


def _masked(text: str, phrases: Iterable[str]) -> str:
    for p in phrases:
        text = text.replace(p, " " * len(p))
    return text


def _check_claims(text: str, out: Output, found: list[Mention]) -> Verdict:
    art = ARTIST_TABLE.get(out.artist)
    own = set(art.styles) if art else set()
    related = set(STYLE_TABLE[out.style].related) if out.style in STYLE_TABLE else set()
    masked = _masked(text, _described(out))
    bad = []
    for m in found:
        if m.head == "artist" and m.label != out.artist:
            bad.append(f"names another artist, {text[m.start:m.end]}")
        elif m.head == "style" and m.label != out.style and masked[m.start:m.end].strip():
            before, after = text[max(0, m.start - 40):m.start], text[m.end:m.end + 30]
            if _SLOT_BEFORE.search(before) or _SLOT_AFTER.match(after):
                bad.append(f"gives {m.label} as the movement")
            elif m.label not in own and m.label not in related:
                bad.append(f"names {m.label}, neither the prediction, {out.artist}'s movement nor a related one")
    bad = list(dict.fromkeys(bad))
    return Verdict(not bad, True, "; ".join(bad) if bad else "no other label claimed")


# ------------------------------------------------------------------------------------------------ wording

_LOW = re.compile(r"\b(?:low|lower|lowest|uncertain|uncertainty|unsure|tentative|weak|weaker|weakest|doubt\w*|"
                  r"caution|cautious|guess|spread|mixed|not\s+(?:very\s+)?(?:sure|confident|certain)|least\s+(?:sure|certain|"
                  r"confident)|unreliable|less\s+(?:sure|certain|confident)|double-check)\b", re.I)
_HIGH = re.compile(r"\b(?:very\s+high|is\s+high|high\s+confidence|highly\s+confident|confident|certain|certainty|"
                   r"reliable|clear-cut|unambiguous|decisive(?:ly)?|firm|strong\s+prediction|no\s+doubt|"
                   r"definitely|almost\s+all\s+of\s+the\s+probability)\b", re.I)
_NEGATION = re.compile(r"\b(?:not|no|never|without|less|least|more|rather\s+than|hardly|far\s+from)\b[\w\s,-]{0,20}$|"
                       r"n't\s+[\w\s-]{0,12}$", re.I)
_GLOBAL = re.compile(r"\b(?:all\s+three|the\s+three|overall|taken\s+together|as\s+a\s+whole|three\s+heads|"
                     r"classification)\b", re.I)
_MISMATCH = re.compile(
    r"\b(?:not\s+usually\s+associated|unusual|does\s+not\s+match|doesn't\s+match|do\s+not\s+match|mismatch\w*|"
    r"tension|atypical|inconsistent|at\s+odds|conflicts?|not\s+(?:his|her|their|the\s+artist's)\s+(?:most\s+)?"
    r"(?:usual|typical)|not\s+typical|unexpected|misread\w*|misled|confus\w*|rather\s+than\s+(?:his|her|their)|"
    r"outside\s+(?:his|her|their))\b", re.I)
_AGREE = re.compile(r"\b(?:(?:predictions|heads|labels|three)\s+(?:all\s+)?(?:agree|are\s+consistent)|"
                    r"consistent\s+with\s+each\s+other|agree\s+with\s+each\s+other|one\s+coherent|"
                    r"reads\s+as\s+a\s+typical|(?:artist,\s+style\s+and\s+genre|all\s+three)\s+(?:are\s+)?"
                    r"(?:consistent|agree|fit))\b", re.I)


def _unnegated(pattern: re.Pattern[str], s: str) -> list[str]:
    return [m.group(0) for m in pattern.finditer(s) if not _NEGATION.search(s[:m.start()])]


def _about(sentence: str, s0: int, head: str, out: Output, found: list[Mention],
           nums: list[tuple[Number, str | None]]) -> bool:
    """Whether a sentence (starting at ``s0`` in the text) talks about ``head``: its number, its name or the
    head's own word ("the style prediction")."""
    end = s0 + len(sentence)
    if any(h == head and s0 <= n.start < end for n, h in nums):
        return True
    if any(m.head == head and m.label == out.label(head) and s0 <= m.start < end for m in found):
        return True
    word = {"artist": r"artist", "style": r"style|movement", "genre": r"genre|subject"}[head]
    return re.search(rf"\b(?:{word})\b", sentence, re.I) is not None


def _check_low(text: str, out: Output, spans: list[tuple[int, int]], found: list[Mention],
               nums: list[tuple[Number, str | None]]) -> Verdict:
    low_heads = [h for h in HEADS if out.conf(h) < LOW_BELOW]
    if not low_heads:
        return Verdict(True, False, f"no confidence below {LOW_BELOW:g}%")
    bad = []
    for h in low_heads:
        about = [(text[a:b], a) for a, b in spans if _about(text[a:b], a, h, out, found, nums)]
        if not any(_LOW.search(s) for s, _ in about):
            bad.append(f"{h} {out.conf(h):.1f}% is not called low or uncertain")
        high = [w for s, _ in about for w in _unnegated(_HIGH, s) if not _LOW.search(s)]
        high += [w for a, b in spans if _GLOBAL.search(text[a:b]) for w in _unnegated(_HIGH, text[a:b])]
        if high:
            bad.append(f"{h} {out.conf(h):.1f}% is called {high[0]!r}")
    return Verdict(not bad, True, "; ".join(bad) if bad else f"low {', '.join(low_heads)} called low")


def _check_mismatch(head: str, text: str, out: Output, spans: list[tuple[int, int]], found: list[Mention],
                    nums: list[tuple[Number, str | None]]) -> Verdict:
    art = ARTIST_TABLE.get(out.artist)
    label = out.label(head)
    if art is None or label not in _TABLES[head]:
        return Verdict(True, False, "not in the label tables")
    fits = label in (art.styles if head == "style" else art.genres)
    about = [text[a:b] for a, b in spans if _about(text[a:b], a, head, out, found, nums)]
    flagged = [s for s in about if _MISMATCH.search(s)]
    if fits:
        named = [s for s in flagged if any(m.label == label for m in mentions(s, out))]
        return Verdict(not named, False, f"{label} called unusual for {out.artist}" if named else "fits the artist")
    bad = [] if flagged else [f"{label} is not {out.artist}'s; not flagged"]
    if agree := [m.group(0) for a, b in spans for m in _AGREE.finditer(text[a:b])]:
        bad.append(f"says {agree[0]!r} despite the {head} mismatch")
    return Verdict(not bad, True, "; ".join(bad) if bad else "mismatch flagged")


def _check_ending(text: str, spans: list[tuple[int, int]]) -> Verdict:
    t = text.strip()
    if not t:
        return Verdict(False, True, "empty")
    if not re.search(r"[.!?][\"')\]]*$", t):
        return Verdict(False, True, f"ends mid-sentence: ...{t[-30:]!r}")
    seen: set[str] = set()
    for a, b in spans:
        s = " ".join(text[a:b].lower().split())
        if len(s) > 15 and s in seen:
            return Verdict(False, True, f"repeats a sentence: {s[:40]!r}")
        seen.add(s)
    words = t.lower().split()
    grams: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - 9):
        g = tuple(words[i:i + 10])
        grams[g] = grams.get(g, 0) + 1
        if grams[g] >= 3:
            return Verdict(False, True, f"loops: {' '.join(g)!r}")
    return Verdict(True, True, "ends on a sentence")


def _check_named(head: str, out: Output, found: list[Mention]) -> Verdict:
    label = out.label(head)
    ok = any(m.head == head and m.label == label for m in found)
    return Verdict(ok, True, f"{label} named" if ok else f"{label} not named")


# ------------------------------------------------------------------------------------------------ entry points


def check(text: str, case: Any) -> CheckResult:
    """Every fact's verdict for ``text`` explaining the CNN output ``case`` (see the module docstring).

    Args:
        text: the explanation.
        case: an :class:`Output`, a templates ``Case``, or ``{"artist", "style", "genre", "confidences"}``.
    """
    out = as_output(case)
    found = mentions(text, out)
    spans = sentences(text)
    nums = [(n, matching_head(n.value, n.decimals, out)) for n in numbers(text)]
    wording = _masked(text, _descriptions(out))  # same length: spans and mentions index it too
    facts = {h: _check_named(h, out, found) for h in HEADS}
    facts["numbers"] = _check_numbers(text, out)
    facts["claims"] = _check_claims(text, out, found)
    facts["low_confidence"] = _check_low(wording, out, spans, found, nums)
    facts["style_mismatch"] = _check_mismatch("style", wording, out, spans, found, nums)
    facts["genre_mismatch"] = _check_mismatch("genre", wording, out, spans, found, nums)
    facts["ending"] = _check_ending(text, spans)
    return CheckResult(facts)


@dataclass
class Rates:
    """Pass rates over many checks: per fact (over the texts where it applies) and all facts together."""

    n: int = 0
    passed: int = 0
    ok: dict[str, int] = field(default_factory=dict)
    applies: dict[str, int] = field(default_factory=dict)

    def add(self, res: CheckResult) -> None:
        self.n += 1
        self.passed += res.passed
        labels = Verdict(all(res.facts[h].ok for h in HEADS))
        for k, v in [*res.facts.items(), ("labels", labels)]:
            if v.applies or not v.ok:  # a false mismatch claim counts against a fact that does not apply
                self.applies[k] = self.applies.get(k, 0) + 1
                self.ok[k] = self.ok.get(k, 0) + v.ok

    def rate(self, fact: str | None = None) -> float | None:
        """Fraction passed: all facts together (``None``), or one fact (``labels``: artist, style and genre all
        named) over the texts where it applied or failed (``None`` if there were none)."""
        if fact is None:
            return self.passed / self.n if self.n else None
        n = self.applies.get(fact, 0)
        return self.ok.get(fact, 0) / n if n else None


def rates(results: Sequence[CheckResult]) -> Rates:
    r = Rates()
    for res in results:
        r.add(res)
    return r


# ------------------------------------------------------------------------------------------------ display


def marks(res: CheckResult, case: Any) -> list[tuple[bool, str]]:
    """``(ok, label)`` per shown fact, in reading order: artist, style, genre, each stated number, then the flags
    that apply (low confidence, mismatches) and any other failed fact. What the panes and the CLI put a ✓ or ✗
    next to; a contradicted fact is never shown without its ✗."""
    out, f = as_output(case), res.facts
    items = [(f[h].ok, f"{h} {out.label(h)}") for h in HEADS]
    items += [(bool(i["ok"]), str(i["text"])) for i in f["numbers"].items]
    names = {"low_confidence": "low confidence called low", "style_mismatch": "style mismatch flagged",
             "genre_mismatch": "genre mismatch flagged"}
    for key, name in names.items():
        if f[key].applies or not f[key].ok:
            items.append((f[key].ok, name if f[key].applies else f[key].detail))
    for key in ("claims", "ending"):
        if not f[key].ok:
            items.append((False, f[key].detail))
    return items


def format_marks(res: CheckResult, case: Any) -> str:
    """One line of ``✓ artist Claude Monet  ✗ 80.7%  ...`` (see :func:`marks`)."""
    return "  ".join(f"{'✓' if ok else '✗'} {label}" for ok, label in marks(res, case))
