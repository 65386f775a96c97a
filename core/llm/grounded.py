"""Grounded decoding: explanations checked against the CNN output as they are made, for the CLI and the panes.

Two ways, and both together (``DECODES``):

- ``constrain``: while decoding, a token that would write a confidence the prompt does not hold ("80.7%" when the
  heads say 96.2 / 94.8 / 91.3) or complete the name of another artist or of a movement the tables do not connect
  to this output is masked, and the best remaining one is taken (:class:`GroundingConstraint`). Cheap: the top
  token is checked each step, the others only when it is refused.
- ``resample``: the text is checked after it is written; if a fact fails, it is written again with sampling (new
  seeds), up to ``tries`` texts, and the best-grounded one is kept (the first that passes every check ends it).
- ``both`` (the default): constrained texts, resampled on failure. ``off``: plain decoding, still checked.

:func:`grounded_explain` returns a :class:`GroundedText` (text + verdict); :func:`grounded_stream` yields events for
a live view: the first text streams as it is made, and when a retry replaces it the consumer is told to restart.
A prompt that is not in the dataset's format has no facts to check: it is decoded plainly, with no verdict.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from core.explain import parse_prompt
from core.explain.check import CheckResult, Output, as_output, check, matching_head, mentions
from core.explain.labels import ARTIST_TABLE, STYLE_TABLE, STYLES
from core.llm.generate import Explainer
from core.llm.sampling import SamplingSettings
from core.sampling_defaults import DECODES, DEFAULT_DECODE, DEFAULT_TRIES

__all__ = ["DECODES", "DEFAULT_DECODE", "DEFAULT_TRIES", "Event", "GroundedText", "GroundingConstraint",
           "grounded_explain", "grounded_stream"]

RETRY_TEMPERATURE = 0.8  # a greedy first try is retried with sampling: greedy would only repeat itself


@dataclass
class GroundedText:
    text: str
    check: CheckResult | None  # None: a free-form prompt, nothing to check against
    tries: int
    seconds: float
    decode: str


@dataclass
class Event:
    """``delta``: more text of the try being shown; ``restart``: a new try replaces it (``text`` is empty);
    ``done``: the final :class:`GroundedText` in ``result``."""

    kind: str
    text: str = ""
    result: GroundedText | None = None


# ------------------------------------------------------------------------------------------------ constraint

_NUMBER_TAIL = re.compile(r"(?<![\w.])(\d+(?:\.\d*)?)(\s*%)?$")


class GroundingConstraint:
    """Masks next tokens that would state a number or a label the CNN output does not support.

    Numbers: a decimal in progress must be a prefix of one of the three confidences as the prompt writes them;
    an integer in progress too, unless it starts with 1 or 2 (years and centuries in the label tables: "1840",
    "19th-20th"); a percent sign must close a number that is one of the confidences. Names: completing the name of
    another artist, or of a movement that is neither predicted, the artist's, related to the prediction nor part
    of its description, is refused."""

    def __init__(self, ex: Explainer, case: Output, top: int = 50, window: int = 16) -> None:
        self.tok, self.case, self.top, self.window = ex.tokenizer, case, top, window
        self.allowed = [f"{c:.1f}" for c in case.confidences]
        art = ARTIST_TABLE.get(case.artist)
        ok_styles = {case.style, *(art.styles if art else ())}
        if case.style in STYLE_TABLE:
            st = STYLE_TABLE[case.style]
            ok_styles |= set(st.related) | {s for s in STYLES if s in " ".join((*st.cues, st.idea))}
        self.ok_styles = ok_styles

    def _number_ok(self, tail: str) -> bool:
        m = _NUMBER_TAIL.search(tail)
        if m is None:
            return True
        digits, pct = m.group(1), m.group(2)
        if pct:
            decimals = len(digits.split(".")[1]) if "." in digits.rstrip(".") else 0
            return matching_head(float(digits.rstrip(".")), decimals, self.case) is not None
        if any(a.startswith(digits) for a in self.allowed):
            return True
        return "." not in digits and digits[0] in "12"

    def _names_ok(self, before: str, tail: str) -> bool:
        for m in mentions(tail, self.case):
            if m.end <= len(before):
                continue  # written before this token: not this token's doing
            if m.head == "artist" and m.label != self.case.artist:
                return False
            if m.head == "style" and m.label not in self.ok_styles:
                return False
        return True

    def ok(self, before: str, tail: str) -> bool:
        """Whether ``tail`` (``before`` plus one candidate token, decoded) is still grounded."""
        return self._number_ok(tail) and self._names_ok(before, tail)

    def __call__(self, generated: list[int], scores: torch.Tensor) -> torch.Tensor:
        ctx = generated[-self.window:]
        before = self.tok.decode(ctx)
        order = torch.topk(scores[0], min(self.top, scores.size(-1))).indices.tolist()
        first_ok = None
        for rank, cand in enumerate(order):
            if scores[0, cand] == float("-inf"):
                break
            if self.ok(before, self.tok.decode([*ctx, cand])):
                first_ok = rank
                break
        if first_ok in (None, 0):
            return scores  # the model's own choice is fine, or nothing in reach is: leave it be
        keep = [c for c in order[first_ok:] if scores[0, c] != float("-inf")
                and self.ok(before, self.tok.decode([*ctx, c]))]
        masked = torch.full_like(scores, float("-inf"))
        masked[0, keep] = scores[0, keep]
        return masked


# ------------------------------------------------------------------------------------------------ decoding


def _retry_settings(s: SamplingSettings, attempt: int) -> SamplingSettings:
    seed = (s.seed or 0) + attempt
    return replace(s, temperature=s.temperature if not s.greedy else RETRY_TEMPERATURE, seed=seed)


def _better(a: CheckResult, b: CheckResult | None) -> bool:
    return b is None or (a.passed, a.score) > (b.passed, b.score)


def grounded_stream(ex: Explainer, prompt: str, settings: SamplingSettings | None = None,
                    decode: str = DEFAULT_DECODE, tries: int = DEFAULT_TRIES,
                    cancel: threading.Event | None = None, case: Output | dict | None = None) -> Iterator[Event]:
    """Events of a grounded explanation: the first try's text deltas, a ``restart`` before each later try that
    is shown, and ``done`` with the kept text and its verdict (see the module docstring).

    Args:
        ex: the explainer.
        prompt: the prompt (the dataset's format: its facts are what the text is checked against).
        settings: decoding of the first try; retries sample (a greedy first try is retried at temperature 0.8).
        decode: ``both``, ``resample``, ``constrain`` or ``off``.
        tries: the most texts written (``resample`` / ``both``).
        cancel: set it to stop between tokens; ``done`` then carries what was written so far.
        case: the CNN output, when the prompt is not in the dataset's format.
    """
    if decode not in DECODES:
        raise ValueError(f"decode must be one of {', '.join(DECODES)}; got {decode!r}")
    s = settings or SamplingSettings()
    t0 = time.perf_counter()
    parsed = parse_prompt(prompt)
    out = as_output(case) if case is not None else as_output(parsed[0]) if parsed else None
    if out is None:
        text = ""
        for delta in ex.stream(prompt, s, cancel):
            text += delta
            yield Event("delta", delta)
        yield Event("done", result=GroundedText(text, None, 1, time.perf_counter() - t0, "off"))
        return
    n_tries = tries if decode in ("both", "resample") else 1
    best_text, best = "", None
    for attempt in range(n_tries):
        constraint = GroundingConstraint(ex, out) if decode in ("both", "constrain") else None
        st = s if attempt == 0 else _retry_settings(s, attempt)
        if attempt:
            yield Event("restart")
        text = ""
        for delta in ex.stream(prompt, st, cancel, constraint=constraint):
            text += delta
            yield Event("delta", delta)
        res = check(text, out)
        if _better(res, best):
            best_text, best = text, res
        if res.passed or (cancel is not None and cancel.is_set()):
            break
    yield Event("done", result=GroundedText(best_text, best, attempt + 1, time.perf_counter() - t0, decode))


def grounded_explain(ex: Explainer, prompt: str, settings: SamplingSettings | None = None,
                     decode: str = DEFAULT_DECODE, tries: int = DEFAULT_TRIES,
                     cancel: threading.Event | None = None, case: Output | dict | None = None) -> GroundedText:
    """The kept explanation and its verdict (``grounded_stream`` without the live events)."""
    result = None
    for ev in grounded_stream(ex, prompt, settings, decode, tries, cancel, case):
        if ev.kind == "done":
            result = ev.result
    assert result is not None  # grounded_stream always ends with "done"
    return result
