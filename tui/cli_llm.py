"""``ncanvas data explanations``, ``ncanvas explain`` and ``ncanvas eval-llm``: the explainer LLMs' commands.

Module scope is light: torch and the model code are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import NcanvasError
from core.sampling_defaults import DEFAULT_DECODE, DEFAULT_TRIES, EXPLAIN
from tui.cli_base import Threads, apply_threads, checkpoint_path, echo_json
from tui.cli_data import data_app


@data_app.command("explanations")
def data_explanations(
    out: Annotated[Path, typer.Option("--out", help="Folder for train/val/test.jsonl and meta.json.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of prompt -> explanation pairs.")] = 100_000,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (same seed, same pairs).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print meta.json to stdout.")] = False,
) -> None:
    """Generate synthetic CNN-result -> explanation pairs, split by (artist, style, genre) triple."""
    from core.explain.dataset import write_dataset

    meta = write_dataset(out, n, seed)
    if as_json:
        echo_json(meta)
    else:
        c = meta["counts"]
        typer.echo(f"wrote {n} pairs to {out} (train {c['train']}, val {c['val']}, test {c['test']}) "
                   f"in {meta['seconds']}s")


def _confs(conf: str) -> tuple[float, float, float]:
    try:
        vals = [float(v.strip().rstrip("%")) for v in conf.split(",")]
    except ValueError:
        raise NcanvasError(f"--conf expects one or three percentages like 92.5 or 96.2,94.8,91.3; got {conf!r}") from None
    if len(vals) == 1:
        vals *= 3
    if len(vals) != 3 or not all(0 <= v <= 100 for v in vals):
        raise NcanvasError(f"--conf expects one or three percentages in 0..100; got {conf!r}")
    return vals[0], vals[1], vals[2]


def build_prompt(artist: str | None, style: str | None, genre: str | None, conf: str,
                 prompt_file: Path | None) -> str:
    """The prompt from labels (checked against the tables) or from a file."""
    from core.explain import canonical_label, format_prompt

    if prompt_file is not None:
        if artist or style or genre:
            raise NcanvasError("give either --prompt-file or --artist/--style/--genre, not both")
        try:
            text = prompt_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise NcanvasError(f"cannot read --prompt-file {prompt_file}: {e}") from None
        if not text:
            raise NcanvasError(f"--prompt-file {prompt_file} is empty")
        return text
    if not (artist and style and genre):
        raise NcanvasError("give --artist, --style and --genre (or --prompt-file)")
    a, s, g = _confs(conf)
    return format_prompt(canonical_label(artist, "artist"), a, canonical_label(style, "style"), s,
                         canonical_label(genre, "genre"), g)


def _settings(max_new_tokens: int, temperature: float, top_k: int, top_p: float, rep: float, seed: int | None):
    from core.llm.sampling import SamplingSettings

    return SamplingSettings(max_new_tokens, temperature, top_k, top_p, rep, seed)


def _grounded_columns(explainers: list[Any], prompt: str, settings: Any, decode: str = "off",
                      tries: int = 1) -> list[Any]:
    """Each explainer's grounded text (``core.llm.grounded``), streamed as live columns that step one token each
    in turn; a retry that replaces a column's text clears it first. Returns the ``GroundedText`` of each."""
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from core.llm.grounded import grounded_stream

    streams = {i: ex.events(prompt, settings, decode, tries) if hasattr(ex, "events")  # analyze's timed wrapper
               else grounded_stream(ex, prompt, settings, decode, tries) for i, ex in enumerate(explainers)}
    texts, results = ["" for _ in explainers], [None for _ in explainers]

    def table() -> Table:
        t = Table(expand=True, show_lines=False)
        for ex in explainers:
            t.add_column(f"{ex.name} ({ex.kind})", ratio=1)
        t.add_row(*texts)
        return t

    with Live(table(), console=Console(), refresh_per_second=12) as live:
        while streams:
            for i in list(streams):
                ev = next(streams[i], None)
                if ev is None:
                    del streams[i]
                elif ev.kind == "delta":
                    texts[i] += ev.text
                elif ev.kind == "restart":
                    texts[i] = ""
                else:
                    results[i] = ev.result
                    texts[i] = ev.result.text
            live.update(table())
    return results


def _stream_side_by_side(explainers: list[Any], prompt: str, settings: Any, decode: str = "off",
                         tries: int = 1) -> list[str]:
    """Both models stream in turn (one token each), shown as two live columns; the texts kept."""
    return [r.text for r in _grounded_columns(explainers, prompt, settings, decode, tries)]


def _verdict_json(res: Any) -> dict[str, Any]:
    """The checker's part of an output object: ``pass``, ``facts`` (per fact: ok, applies, detail[, items]) and
    ``reasons``; null facts for a free-form prompt (nothing to check against)."""
    if res.check is None:
        return {"pass": None, "facts": None, "reasons": [], "tries": res.tries, "decode": res.decode}
    d = res.check.to_dict()
    return {"pass": d["pass"], "facts": d["facts"], "reasons": d["reasons"], "tries": res.tries,
            "decode": res.decode}


def _print_verdict(res: Any, prompt: str, shown: str) -> None:
    """The ✓/✗ line under an explanation, and the kept text when a retry replaced the one streamed."""
    from core.explain import parse_prompt
    from core.explain.check import format_marks

    if res.check is None:
        typer.echo("(free-form prompt: no grounding check)")
        return
    if res.text != shown:
        typer.echo(f"\n[grounded decode: try {res.tries} kept]\n{res.text}")
    parsed = parse_prompt(prompt)
    if parsed is not None:
        typer.echo(format_marks(res.check, parsed[0]))


DECODE_HELP = ("Grounded decoding: both (constrain numbers and names to the prompt's, resample while a check "
               "fails), resample, constrain, or off (plain; still checked).")


def explain_cmd(
    ctx: typer.Context,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="llm/gpt2 checkpoint, run folder, HF folder or job id.")],
    artist: Annotated[str | None, typer.Option(help="Predicted artist, e.g. 'Claude Monet'.")] = None,
    style: Annotated[str | None, typer.Option(help="Predicted style, e.g. Impressionism.")] = None,
    genre: Annotated[str | None, typer.Option(help="Predicted genre, e.g. Landscape.")] = None,
    conf: Annotated[str, typer.Option(help="Confidence %: one for all heads or artist,style,genre.")] = "90,90,90",
    prompt_file: Annotated[Path | None, typer.Option("--prompt-file", help="A full prompt in a file.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="JSON lines of CNN outputs ('-': stdin); one JSON "
                                              "line out per line in, in order (needs --json).")] = None,
    compare: Annotated[str | None, typer.Option("--compare", help="Second checkpoint (or job id), streamed side by side.")] = None,
    decode: Annotated[str, typer.Option("--decode", help=DECODE_HELP)] = DEFAULT_DECODE,
    tries: Annotated[int, typer.Option("--tries", min=1, max=32, help="Most texts written per prompt when resampling.")] = DEFAULT_TRIES,
    max_new_tokens: Annotated[int, typer.Option(min=1, max=4096)] = EXPLAIN.max_new_tokens,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy.")] = EXPLAIN.temperature,
    top_k: Annotated[int, typer.Option(min=0, help="0 = off.")] = EXPLAIN.top_k,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="1 = off.")] = EXPLAIN.top_p,
    repetition_penalty: Annotated[float, typer.Option(min=1.0)] = EXPLAIN.repetition_penalty,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (same seed, same text).")] = EXPLAIN.seed,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of streaming.")] = False,
    threads: Threads = None,
) -> None:
    """Stream an explanation of CNN classification results from a trained explainer, with a ✓/✗ per fact."""
    from core.devices import check_device
    from core.llm.grounded import DECODES

    if decode not in DECODES:
        raise NcanvasError(f"--decode must be one of {', '.join(DECODES)}; got {decode!r}")
    device = check_device(device)
    apply_threads(ctx, threads)
    settings = _settings(max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed)
    if batch is not None:
        if artist or style or genre or prompt_file or compare:
            raise NcanvasError("--batch reads the CNN outputs from its file: no --artist/--style/--genre, "
                               "--prompt-file or --compare with it")
        if not as_json:
            raise NcanvasError("--batch writes JSON lines: add --json")
        lines = _batch_lines(batch)
        from core.llm.generate import load_explainer

        _explain_batch(load_explainer(checkpoint_path(ctx, checkpoint), device), lines, settings, decode, tries)
        return
    prompt = build_prompt(artist, style, genre, conf, prompt_file)
    from core.llm.generate import load_explainer
    from core.llm.grounded import grounded_explain

    explainers = [load_explainer(checkpoint_path(ctx, checkpoint), device)]
    if compare is not None:
        explainers.append(load_explainer(checkpoint_path(ctx, compare), device))
    if as_json:
        out = []
        for ex in explainers:
            res = grounded_explain(ex, prompt, settings, decode, tries)
            out.append({"checkpoint": str(ex.name), "kind": ex.kind, "text": res.text, **_verdict_json(res),
                        "seconds": round(res.seconds, 3)})
        echo_json({"prompt": prompt, "explanations": out})
        return
    if len(explainers) == 2:
        for ex, res in zip(explainers, _grounded_columns(explainers, prompt, settings, decode, tries)):
            typer.echo(f"{ex.name}: ", nl=False)
            _print_verdict(res, prompt, res.text)
        return
    typer.echo(prompt)
    _stream_one(explainers[0], prompt, settings, decode, tries)


def _stream_one(ex: Any, prompt: str, settings: Any, decode: str, tries: int) -> Any:
    """The first try streamed to the terminal, then the verdict (and the kept text if a retry replaced it)."""
    from core.llm.grounded import grounded_stream

    shown, streaming, res = "", True, None
    for ev in grounded_stream(ex, prompt, settings, decode, tries):
        if ev.kind == "delta" and streaming:
            shown += ev.text
            typer.echo(ev.text, nl=False)
        elif ev.kind == "restart":
            streaming = False  # later tries are not streamed: the kept one is printed once known
        elif ev.kind == "done":
            res = ev.result
    typer.echo("")
    _print_verdict(res, prompt, shown)
    return res


def _batch_lines(batch: str) -> list[str]:
    import sys

    if batch == "-":
        return sys.stdin.read().splitlines()
    try:
        return Path(batch).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise NcanvasError(f"cannot read --batch {batch}: {getattr(e, 'strerror', None) or e}") from None


def _explain_batch(ex: Any, lines: list[str], settings: Any, decode: str, tries: int) -> None:
    """One JSON line per input record, in order (README: "Batch explanations"); bad lines get an error object and
    the batch goes on; any bad line makes the command end with one error line and exit 1."""
    from core.explain.batch import read_batch
    from core.explain.faithsets import prompt_of
    from core.llm.grounded import grounded_explain

    errors, total = [], 0
    for item in read_batch(lines):
        total += 1
        if item.case is None:
            errors.append(item.error)
            echo_json({"line": item.line, "error": item.error}, ensure_ascii=False)
            continue
        prompt = prompt_of(item.case)
        res = grounded_explain(ex, prompt, settings, decode, tries, case=item.case)
        row = {"line": item.line, **({"id": item.id} if item.id is not None else {}), "artist": item.case.artist,
               "style": item.case.style, "genre": item.case.genre, "confidences": list(item.case.confidences),
               "prompt": prompt, "text": res.text, **_verdict_json(res), "seconds": round(res.seconds, 3)}
        echo_json(row, ensure_ascii=False)
    if errors:
        raise NcanvasError(f"{len(errors)} of {total} batch lines were not valid (first: {errors[0]})")


def eval_llm_cmd(
    ctx: typer.Context,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="llm/gpt2 checkpoint, run folder, HF folder or job id.")],
    data: Annotated[str, typer.Option(help="Dataset folder (default: regenerate the job's own pairs).")] = "",
    max_examples: Annotated[int, typer.Option(min=1, help="Pairs scored per split.")] = 200,
    samples: Annotated[int, typer.Option(min=0, help="Test prompts to generate for.")] = 3,
    prompts: Annotated[int, typer.Option("--prompts", min=0, help="Prompts per faithfulness set (held-out, low "
                                         "confidence; half as many unseen pairings); 0 skips the rates.")] = 50,
    failures: Annotated[int, typer.Option("--failures", min=0, help="Failing samples shown per set and decoding.")] = 2,
    seed: Annotated[int, typer.Option(help="Sampling seed for the samples.")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    threads: Threads = None,
) -> None:
    """Val/test loss and perplexity of an explainer, its faithfulness rates (greedy and sampled) on three prompt
    sets, and a few generated samples."""
    from core.devices import check_device

    device = check_device(device)
    apply_threads(ctx, threads)
    if data and not (Path(data) / "val.jsonl").is_file():
        raise NcanvasError(f"--data {data}: no val.jsonl there (make one with `ncanvas data explanations`)")
    from core.llm.evaluate import evaluate_explainer, faith_sets_report
    from core.llm.generate import load_explainer
    from core.llm.sampling import SamplingSettings

    ex = load_explainer(checkpoint_path(ctx, checkpoint), device)
    res = evaluate_explainer(ex, data, max_examples, samples, SamplingSettings(320, 0.7, 50, 0.95, 1.1, seed))
    if prompts:
        res["faithfulness"] = faith_sets_report(ex, data, prompts, failures, seed)
    if as_json:
        echo_json(res)
        return
    typer.echo(f"{res['checkpoint']} ({res['kind']})")
    for split in ("val", "test"):
        r = res[split]
        typer.echo(f"  {split:4s} " + (f"loss {r['loss']:.4f}  ppl {r['ppl']:.2f}  ({r['pairs']} pairs, "
                                      f"{r['tokens']} tokens)" if r else "no pairs"))
    if prompts:
        _print_faith(res["faithfulness"])
    for s in res["samples"]:
        typer.echo("\n" + s["prompt"] + "\n> " + s["generated"])


FAITH_ROWS = (("faith_labels", "names the artist, style and genre"), ("faith_numbers", "states only the prompt's numbers"),
              ("faith_claims", "claims no other artist or movement"), ("faith_low_confidence", "calls a low confidence low"),
              ("faith_style_mismatch", "flags an artist/style mismatch"),
              ("faith_genre_mismatch", "flags an artist/genre mismatch"), ("faith_ending", "ends on a sentence, no loop"),
              ("faith", "all checks together"))


def _print_faith(faith: dict[str, Any]) -> None:
    """The issue's table: one row per check, one column per prompt set, "greedy / sampled" percentages."""
    sets = list(faith["sets"])
    typer.echo("\nfaithfulness (greedy / sampled), " + ", ".join(f"{k}: {faith['sets'][k]['n']}" for k in sets))
    typer.echo(f"  {'check':38s}" + "".join(f"{k:>16s}" for k in sets))
    for key, name in FAITH_ROWS:
        cells = []
        for k in sets:
            g, smp = (faith["sets"][k][d]["rates"].get(key) for d in ("greedy", "sampled"))
            cells.append("–" if g is None else f"{g:.0%} / {smp:.0%}")
        typer.echo(f"  {name:38s}" + "".join(f"{c:>16s}" for c in cells))
    for k in sets:
        for d in ("greedy", "sampled"):
            for f in faith["sets"][k][d]["failures"]:
                typer.echo(f"\n[{k}, {d}] " + "; ".join(f["reasons"]) + "\n  " + f["prompt"].replace("\n", " | ")
                           + "\n> " + f["text"])


def register(app: typer.Typer) -> None:
    """``data explanations`` joins tui.cli_data's group at import; explain and eval-llm are added here."""
    app.command("explain")(explain_cmd)
    app.command("eval-llm")(eval_llm_cmd)
