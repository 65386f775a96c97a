"""``ncanvas data explanations``, ``ncanvas explain`` and ``ncanvas eval-llm``: the explainer LLMs' commands.

Module scope is light: torch and the model code are imported inside the commands.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import NcanvasError
from core.sampling_defaults import EXPLAIN
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


def _stream_side_by_side(explainers: list[Any], prompt: str, settings: Any) -> list[str]:
    """Both models stream in turn (one token each), shown as two live columns."""
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    streams = [ex.stream(prompt, settings) for ex in explainers]
    texts = ["" for _ in explainers]

    def table() -> Table:
        t = Table(expand=True, show_lines=False)
        for ex in explainers:
            t.add_column(f"{ex.name} ({ex.kind})", ratio=1)
        t.add_row(*texts)
        return t

    with Live(table(), console=Console(), refresh_per_second=12) as live:
        live_streams = dict(enumerate(streams))
        while live_streams:
            for i in list(live_streams):
                delta = next(live_streams[i], None)
                if delta is None:
                    del live_streams[i]
                else:
                    texts[i] += delta
            live.update(table())
    return texts


def explain_cmd(
    ctx: typer.Context,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="llm/gpt2 checkpoint, run folder, HF folder or job id.")],
    artist: Annotated[str | None, typer.Option(help="Predicted artist, e.g. 'Claude Monet'.")] = None,
    style: Annotated[str | None, typer.Option(help="Predicted style, e.g. Impressionism.")] = None,
    genre: Annotated[str | None, typer.Option(help="Predicted genre, e.g. Landscape.")] = None,
    conf: Annotated[str, typer.Option(help="Confidence %: one for all heads or artist,style,genre.")] = "90,90,90",
    prompt_file: Annotated[Path | None, typer.Option("--prompt-file", help="A full prompt in a file.")] = None,
    compare: Annotated[str | None, typer.Option("--compare", help="Second checkpoint (or job id), streamed side by side.")] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, max=4096)] = EXPLAIN.max_new_tokens,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy.")] = EXPLAIN.temperature,
    top_k: Annotated[int, typer.Option(min=0, help="0 = off.")] = EXPLAIN.top_k,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0, help="1 = off.")] = EXPLAIN.top_p,
    repetition_penalty: Annotated[float, typer.Option(min=1.0)] = EXPLAIN.repetition_penalty,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (same seed, same text).")] = EXPLAIN.seed,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of streaming.")] = False,
    threads: Threads = None,
) -> None:
    """Stream an explanation of CNN classification results from a trained explainer."""
    from core.devices import check_device

    device = check_device(device)
    apply_threads(ctx, threads)
    prompt = build_prompt(artist, style, genre, conf, prompt_file)
    settings = _settings(max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed)
    from core.llm.generate import load_explainer

    explainers = [load_explainer(checkpoint_path(ctx, checkpoint), device)]
    if compare is not None:
        explainers.append(load_explainer(checkpoint_path(ctx, compare), device))
    if as_json:
        out = []
        for ex in explainers:
            t0 = time.perf_counter()
            text = ex.explain(prompt, settings)
            out.append({"checkpoint": str(ex.name), "kind": ex.kind, "text": text,
                        "seconds": round(time.perf_counter() - t0, 3)})
        echo_json({"prompt": prompt, "explanations": out})
        return
    if len(explainers) == 2:
        _stream_side_by_side(explainers, prompt, settings)
        return
    typer.echo(prompt)
    for delta in explainers[0].stream(prompt, settings):
        typer.echo(delta, nl=False)
    typer.echo("")


def eval_llm_cmd(
    ctx: typer.Context,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="llm/gpt2 checkpoint, run folder, HF folder or job id.")],
    data: Annotated[str, typer.Option(help="Dataset folder (default: regenerate the job's own pairs).")] = "",
    max_examples: Annotated[int, typer.Option(min=1, help="Pairs scored per split.")] = 200,
    samples: Annotated[int, typer.Option(min=0, help="Test prompts to generate for.")] = 3,
    seed: Annotated[int, typer.Option(help="Sampling seed for the samples.")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N].")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    threads: Threads = None,
) -> None:
    """Val/test loss and perplexity of an explainer, with a few generated samples."""
    from core.devices import check_device

    device = check_device(device)
    apply_threads(ctx, threads)
    if data and not (Path(data) / "val.jsonl").is_file():
        raise NcanvasError(f"--data {data}: no val.jsonl there (make one with `ncanvas data explanations`)")
    from core.llm.evaluate import evaluate_explainer
    from core.llm.generate import load_explainer
    from core.llm.sampling import SamplingSettings

    ex = load_explainer(checkpoint_path(ctx, checkpoint), device)
    res = evaluate_explainer(ex, data, max_examples, samples, SamplingSettings(160, 0.7, 50, 0.95, 1.1, seed))
    if as_json:
        echo_json(res)
        return
    typer.echo(f"{res['checkpoint']} ({res['kind']})")
    for split in ("val", "test"):
        r = res[split]
        typer.echo(f"  {split:4s} " + (f"loss {r['loss']:.4f}  ppl {r['ppl']:.2f}  ({r['pairs']} pairs, "
                                      f"{r['tokens']} tokens)" if r else "no pairs"))
    for s in res["samples"]:
        typer.echo("\n" + s["prompt"] + "\n> " + s["generated"])


def register(app: typer.Typer) -> None:
    """``data explanations`` joins tui.cli_data's group at import; explain and eval-llm are added here."""
    app.command("explain")(explain_cmd)
    app.command("eval-llm")(eval_llm_cmd)
