"""Are confidences copyable? For each tokenizer scheme and prompt format: the share of confidences written in an
explanation whose token ids are exactly the prompt's token ids for that number.

A number is copyable when the explainer can reproduce it by copying the prompt's tokens (what an induction head
does); when the prompt writes "(96.2%" as ``96 . 2`` and the explanation " 96.2%" as `` 96 . 2``, the first token
differs and the model must learn a mapping per number instead.

    python bench/bench_number_tokens.py [--pairs 2000]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.explain import format_prompt, parse_prompt  # noqa: E402
from core.explain.dataset import generate  # noqa: E402
from core.llm.tokenizer import TextTokenizer, train_bpe  # noqa: E402


def number_ids(tok: TextTokenizer, text: str, number: str) -> list[tuple[int, ...]]:
    """The token ids covering each occurrence of ``number`` (e.g. "96.2") in ``text``, leading space excluded."""
    enc = tok.tok.encode(text, add_special_tokens=False)
    out = []
    for m in re.finditer(re.escape(number) + r"(?!\d)", text):
        ids = tuple(i for i, (a, b) in zip(enc.ids, enc.offsets) if a < m.end() and b > m.start()
                    and text[a:b].strip())
        out.append(ids)
    return out


def copyable(tok: TextTokenizer, recs: list[dict], version: int) -> tuple[float, int]:
    same = total = 0
    for r in recs:
        case, _ = parse_prompt(r["prompt"])
        prompt = format_prompt(case["artist"], case["confidences"][0], case["style"], case["confidences"][1],
                               case["genre"], case["confidences"][2], version=version)
        for conf in case["confidences"]:
            number = f"{conf:.1f}"
            src = number_ids(tok, prompt, number)[:1]
            for ids in number_ids(tok, r["explanation"], number):
                total += 1
                same += bool(src) and ids == src[0]
    return same / max(total, 1), total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2000)
    args = ap.parse_args()
    recs = list(generate(args.pairs, seed=0))
    texts = [r["prompt"] + "\n" + r["explanation"] for r in recs]
    toks = {"corpus BPE, merged digits (before)": train_bpe(texts, 8192, split_digits=False),
            "corpus BPE, single digits (now)": train_bpe(texts, 8192, split_digits=True)}
    try:
        from core.llm.tokenizer import from_hf

        toks["GPT-2"] = from_hf("gpt2", local_only=True)
    except Exception as e:  # noqa: BLE001 - GPT-2 is optional here (offline machines)
        print(f"(GPT-2's tokenizer not cached: {e}; skipped)")
    print(f"{'tokenizer':40s} {'prompt v1 (96.2% conf.)':>24s} {'prompt v2 (conf. 96.2%)':>24s}")
    for name, tok in toks.items():
        v1, n = copyable(tok, recs, 1)
        v2, _ = copyable(tok, recs, 2)
        print(f"{name:40s} {v1:24.1%} {v2:24.1%}   ({n} numbers)")


if __name__ == "__main__":
    main()
