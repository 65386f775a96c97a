"""The issue-14 table: faithfulness rates of explainer checkpoints on the same three prompt sets, per decoding.

Sets (``core.explain.faithsets``): held-out triples (the test split), low confidences (60-65 %) on them, and
artist/movement pairings that no compared model saw in training. ``--unseen-by FILE`` adds pairings to exclude
(JSON lines with artist and style, e.g. an older generator's train split), so a model trained on other data is
compared on pairings neither saw. Decodings: greedy, sampled (``ncanvas explain``'s defaults), and the grounded
decodes (``core.llm.grounded``) on top of greedy. Prints one table per checkpoint and the mean seconds per text.

    python bench/faith_table.py CKPT [CKPT ...] [--n 50] [--n-unseen 25] [--decodes greedy,sampled,both]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.explain.dataset import generate_splits  # noqa: E402
from core.explain.faithsets import heldout_cases, low_cases, prompt_of, unseen_cases  # noqa: E402
from core.llm.faith import GREEDY, SAMPLED, faithfulness, score_texts  # noqa: E402
from core.llm.generate import load_explainer  # noqa: E402
from core.llm.grounded import grounded_explain  # noqa: E402

ROWS = (("faith_labels", "names the artist, style and genre"), ("faith_numbers", "states only the prompt's numbers"),
        ("faith_claims", "claims no other artist/movement"), ("faith_low_confidence", "calls a low confidence low"),
        ("faith_style_mismatch", "flags an artist/style mismatch"), ("faith_genre_mismatch", "flags artist/genre"),
        ("faith_ending", "ends on a sentence, no loop"), ("faith", "all checks together"))


def sets(n: int, n_unseen: int, n_pairs: int, data_seed: int, unseen_by: list[dict]) -> dict[str, list]:
    recs = generate_splits(n_pairs, data_seed)
    train = {(r["artist"], r["style"], r["genre"]) for r in recs["train"] + unseen_by if "genre" in r}
    test = [r for r in recs["test"] if (r["artist"], r["style"], r["genre"]) not in train]
    return {"heldout": heldout_cases(test, n), "low": low_cases(test, n),
            "unseen": unseen_cases(recs["train"], n_unseen, also_unseen_by=unseen_by)}


def run_decode(ex, cases, decode: str) -> dict:
    t0 = time.perf_counter()
    if decode == "greedy":
        rep = faithfulness(ex, cases, GREEDY, keep_failures=3)
    elif decode == "sampled":
        rep = faithfulness(ex, cases, SAMPLED, keep_failures=3)
    else:
        texts, tries = [], 0
        for c in cases:
            res = grounded_explain(ex, prompt_of(c), GREEDY, decode, 4, case=c)
            texts.append(res.text)
            tries += res.tries
        rep = score_texts(cases, texts, 3)
        rep.rates["tries"] = tries / len(cases)
    rep.seconds = time.perf_counter() - t0
    return {"rates": rep.rates, "s_per_text": rep.seconds / len(cases), "failures": rep.failures}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--n-unseen", type=int, default=25)
    ap.add_argument("--n-pairs", type=int, default=20000)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--unseen-by", default="", help="JSON lines of pairs/triples no compared model may have seen")
    ap.add_argument("--decodes", default="greedy,sampled,both,resample,constrain")
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()
    unseen_by = [json.loads(x) for x in Path(args.unseen_by).read_text().splitlines()] if args.unseen_by else []
    prompt_sets = sets(args.n, args.n_unseen, args.n_pairs, args.data_seed, unseen_by)
    results = {}
    for ck in args.checkpoints:
        ex = load_explainer(ck)
        results[ck] = {name: {d: run_decode(ex, cases, d) for d in args.decodes.split(",")}
                       for name, cases in prompt_sets.items()}
        print(f"\n{ck} (prompt format {ex.prompt_format}); cells: " + " / ".join(args.decodes.split(",")))
        print(f"{'check':36s}" + "".join(f"{k + ' (' + str(len(v)) + ')':>40s}" for k, v in prompt_sets.items()))
        for key, name in (*ROWS, ("tries", "texts written per prompt")):
            cells = []
            for k in prompt_sets:
                vals = [results[ck][k][d]["rates"].get(key) for d in args.decodes.split(",")]
                cells.append(" / ".join("–" if v is None else f"{v:.0%}" if key != "tries" else f"{v:.1f}"
                                        for v in vals))
            print(f"{name:36s}" + "".join(f"{c:>40s}" for c in cells))
        secs = [" / ".join(f"{results[ck][k][d]['s_per_text']:.2f}" for d in args.decodes.split(","))
                for k in prompt_sets]
        print(f"{'seconds per text':36s}" + "".join(f"{c:>40s}" for c in secs))
        for k in prompt_sets:
            for d in args.decodes.split(","):
                for f in results[ck][k][d]["failures"][:1]:
                    print(f"  [{k}/{d}] {'; '.join(f['reasons'])}\n     {f['text'][:300]}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
