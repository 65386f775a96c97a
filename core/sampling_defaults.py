"""The explainer LLMs' sampling defaults, in one place: ``ncanvas explain`` and the Explain pane use
:data:`EXPLAIN`, ``ncanvas analyze`` and the Analyze pane :data:`ANALYZE`. No torch (the dashboard's form reads
them before any model is loaded); ``core.llm.sampling.SamplingSettings`` takes its defaults from here too."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SamplingDefaults:
    max_new_tokens: int = 320          # the longest dataset explanation is ~290 tokens: less cuts one off
    temperature: float = 0.8         # 0: greedy
    top_k: int = 50                  # 0: off
    top_p: float = 0.95              # 1.0: off
    repetition_penalty: float = 1.1  # 1.0: off
    seed: int | None = None          # None: a new text each time


EXPLAIN = SamplingDefaults()
# analyze tells the same story each time (seed 0) and a little more conservatively
ANALYZE = replace(EXPLAIN, temperature=0.7, seed=0)

# grounded decoding (core.llm.grounded): offered everywhere an explanation is written, and the default
DECODES = ("both", "resample", "constrain", "off")
DEFAULT_DECODE = "both"
DEFAULT_TRIES = 4
