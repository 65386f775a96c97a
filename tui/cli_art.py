"""``ncanvas data art-synthetic`` and ``ncanvas analyze`` (image -> CNN -> Grad-CAM -> streamed explanation)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import NcanvasError
from core.sampling_defaults import ANALYZE, DEFAULT_DECODE, DEFAULT_TRIES
from tui.cli_base import Threads, apply_threads, checkpoint_path, echo_json, workspace
from tui.cli_data import data_app


@data_app.command("art-synthetic")
def art_synthetic(
    out: Annotated[Path, typer.Option("--out", help="Folder for images/ and labels.csv.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of paintings.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same set).")] = 0,
    size: Annotated[int, typer.Option(min=16, max=1024, help="Image side in pixels.")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Draw a procedural art set in the WikiArt layout (each style a stroke family, each artist a variation)."""
    from core.art.synthetic import write_dataset

    if out.exists() and not out.is_dir():
        raise NcanvasError(f"--out {out} exists and is not a folder")
    t0 = time.perf_counter()
    csv_path = write_dataset(out, n, seed=seed, size=size)
    info = {"csv": str(csv_path), "images": n, "seconds": round(time.perf_counter() - t0, 2)}
    if as_json:
        echo_json(info)
    else:
        typer.echo(f"wrote {n} images and {csv_path} in {info['seconds']}s")


def _bar(p: float, width: int = 20) -> str:
    return "█" * int(round(p * width))


class _TimedExplainer:
    """An explainer whose grounded ``events`` record the time to the first text delta and to the end."""

    def __init__(self, ex: Any, source: Path) -> None:
        self.ex, self.source, self.name, self.kind = ex, source, ex.name, ex.kind
        self.first_s: float | None = None
        self.total_s = 0.0

    def events(self, prompt: str, settings: Any, decode: str, tries: int) -> Iterator[Any]:
        from core.llm.grounded import grounded_stream

        t0 = time.perf_counter()
        for ev in grounded_stream(self.ex, prompt, settings, decode, tries):
            if self.first_s is None and ev.kind == "delta":
                self.first_s = time.perf_counter() - t0
            yield ev
        self.total_s = time.perf_counter() - t0


def _check_options(cmap: str, colors: str | None, out: Path | None, llm: str | None, compare: str | None) -> None:
    from core.render import COLORMAP_NAMES

    if cmap not in COLORMAP_NAMES:
        raise NcanvasError(f"--cmap must be one of {', '.join(COLORMAP_NAMES)}; got {cmap!r}")
    if colors not in (None, "truecolor", "256"):
        raise NcanvasError("--colors must be truecolor or 256")
    if out is not None and out.exists() and not out.is_dir():
        raise NcanvasError(f"--out {out} exists and is not a folder")
    if compare and not llm:
        raise NcanvasError("--compare needs --llm as the first explainer")


def _load_explainers(ctx: typer.Context, llm: str | None, compare: str | None) -> list[_TimedExplainer]:
    """Load --llm and --compare before any CNN work, so a missing or wrong file costs nothing but one line."""
    from core.llm.generate import load_explainer
    sources = [checkpoint_path(ctx, v) for v in (llm, compare) if v]
    return [_TimedExplainer(load_explainer(src), src) for src in sources]


def _cam_folder(ctx: typer.Context, image: Path, out: Path | None) -> Path:
    """--out, else one folder per image file: two paintings called cat.png do not share one."""
    import hashlib

    if out is not None:
        return out
    tag = hashlib.sha1(str(image.resolve()).encode()).hexdigest()[:8]
    return workspace(ctx).root / "analyze" / f"{image.stem}-{tag}"


def _print_pictures(base: Any, preds: dict[str, Any], overlays: dict[str, Any], width: int,
                    colors: str | None) -> None:
    from core.render import tile_grid, to_ansi

    typer.echo(to_ansi(base, max_width=width, mode=colors), color=True)
    for head, items in preds.items():
        typer.echo(f"{head.title():<7}" + "   ".join(f"{n} {p:6.1%}" for n, p in items[:1]))
        for name, p in items:
            typer.echo(f"   {name[:28]:<28} {p:6.1%} {_bar(p)}")
    typer.echo("Grad-CAM: " + "  |  ".join(f"{h} -> {preds[h][0][0]}" for h in overlays))
    typer.echo(to_ansi(tile_grid(list(overlays.values()), cols=3), max_width=3 * width, mode=colors), color=True)


def _explain(explainers: list[_TimedExplainer], prompt: str, settings: Any, stream: bool, decode: str,
             tries: int) -> list[Any]:
    """Each explainer's grounded text (``GroundedText``: text + verdict) for ``prompt``: streamed to the terminal
    (side by side for two) with a ✓/✗ per fact under it, or collected."""
    from tui.cli_llm import _grounded_columns, _print_verdict

    if not stream:
        return [_final(ex.events(prompt, settings, decode, tries)) for ex in explainers]
    typer.echo("\n" + prompt)
    if len(explainers) == 2:
        results = _grounded_columns(explainers, prompt, settings, decode, tries)
        for ex, res in zip(explainers, results):
            typer.echo(f"{ex.name}: ", nl=False)
            _print_verdict(res, prompt, res.text)
        return results
    shown, streaming, res = "", True, None
    for ev in explainers[0].events(prompt, settings, decode, tries):
        if ev.kind == "delta" and streaming:
            shown += ev.text
            typer.echo(ev.text, nl=False)
        streaming = streaming and ev.kind != "restart"
        res = ev.result if ev.kind == "done" else res
    typer.echo("")
    _print_verdict(res, prompt, shown)
    return [res]


def _final(events: Iterator[Any]) -> Any:
    return [ev.result for ev in events if ev.kind == "done"][-1]


def analyze(
    ctx: typer.Context,
    image: Annotated[Path, typer.Argument(help="A painting (PNG/JPG/..., any size or mode).", show_default=False)],
    cnn: Annotated[str, typer.Option("--cnn", help="An artcnn checkpoint (.pt) or job id.")],
    llm: Annotated[str | None, typer.Option("--llm", help="An explainer checkpoint (llm/gpt2 .pt, HF folder, or job id).")] = None,
    compare: Annotated[str | None, typer.Option("--compare", help="A second explainer, streamed side by side.")] = None,
    method: Annotated[str, typer.Option("--method", help="gradcam or gradcam++.")] = "gradcam",
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=20, help="Classes shown per head.")] = 3,
    width: Annotated[int, typer.Option("--width", min=8, max=200, help="Picture width in character cells.")] = 32,
    alpha: Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="Heat-map opacity.")] = 0.5,
    cmap: Annotated[str, typer.Option("--cmap", help="viridis, inferno, jet or gray.")] = "jet",
    colors: Annotated[str | None, typer.Option("--colors", help="truecolor or 256 (default: from $COLORTERM).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the CAM PNGs (default: <workspace>/analyze/<image>).")] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, max=4096)] = ANALYZE.max_new_tokens,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, max=5.0, help="0: greedy.")] = ANALYZE.temperature,
    top_k_sampling: Annotated[int, typer.Option("--sample-top-k", min=0, help="top-k sampling (0: off).")] = ANALYZE.top_k,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = ANALYZE.top_p,
    seed: Annotated[int, typer.Option("--seed")] = int(ANALYZE.seed or 0),
    decode: Annotated[str, typer.Option("--decode", help="Grounded decoding of the explanation (as the Analyze pane): "
                                        "both, resample, constrain or off; the verdict is shown either way.")] = DEFAULT_DECODE,
    tries: Annotated[int, typer.Option("--tries", min=1, max=32, help="Most texts written when resampling.")] = DEFAULT_TRIES,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (no pictures, no streaming).")] = False,
    threads: Threads = None,
) -> None:
    """Image -> art CNN (artist, style, genre) -> Grad-CAM per head -> the LLM's explanation, streamed."""
    from core.art.api import head_cams, load_art_classifier, logits, predict
    from core.explain import prompt_from_logits
    from core.llm.grounded import DECODES
    from core.llm.sampling import SamplingSettings
    from core.render import overlay, save_png
    from tui.cli_llm import _verdict_json

    if decode not in DECODES:
        raise NcanvasError(f"--decode must be one of {', '.join(DECODES)}; got {decode!r}")
    t0 = time.perf_counter()
    _check_options(cmap, colors, out, llm, compare)
    apply_threads(ctx, threads)
    clf = load_art_classifier(checkpoint_path(ctx, cnn))
    t_cnn = time.perf_counter()
    explainers = _load_explainers(ctx, llm, compare)
    t_llm = time.perf_counter()
    pixels = clf.pixels(image)
    preds = predict(clf, pixels, top_k=top_k)
    cams = head_cams(clf, pixels, method=method)
    base = pixels.astype("float32") / 255.0
    overlays = {h: overlay(base, cam, cmap=cmap, alpha=alpha) for h, cam in cams.items()}
    folder = _cam_folder(ctx, image, out)
    pngs = {h: str(save_png(ov, folder / f"gradcam_{h}.png", scale=4)) for h, ov in overlays.items()}
    prompt = prompt_from_logits(logits(clf, pixels), labels=clf.labels)
    t_cams = time.perf_counter()
    if not as_json:
        _print_pictures(base, preds, overlays, width, colors)
        typer.echo(f"(CAM PNGs in {folder}; CNN {t_cams - t_llm:.2f}s)")
    settings = SamplingSettings(max_new_tokens, temperature, top_k_sampling, top_p, ANALYZE.repetition_penalty, seed)
    results = _explain(explainers, prompt, settings, not as_json, decode, tries) if explainers else []
    total = time.perf_counter() - t0
    if not as_json:
        if explainers:
            typer.echo(f"(load CNN {t_cnn - t0:.2f}s, LLM {t_llm - t_cnn:.2f}s; first token "
                       f"{explainers[0].first_s or 0:.2f}s; total {total:.2f}s)")
        return
    timings = {"cnn_load_s": _ms(t_cnn - t0), "llm_load_s": _ms(t_llm - t_cnn), "cnn_cams_s": _ms(t_cams - t_llm),
               "llm_first_token_s": [_ms(ex.first_s) for ex in explainers],
               "llm_s": [_ms(ex.total_s) for ex in explainers], "total_s": _ms(total)}
    echo_json({
        "image": str(image), "predictions": {h: [{"label": n, "prob": p} for n, p in v] for h, v in preds.items()},
        "cams": pngs, "method": method, "prompt": prompt,
        "explanations": [{"checkpoint": str(ex.source), "text": r.text, **_verdict_json(r)}
                         for ex, r in zip(explainers, results)],
        "seconds": round(total, 3), "timings": timings,
    }, indent=2)


def _ms(seconds: float | None) -> float | None:
    """Seconds rounded to 0.1 ms for the JSON (None stays None: an explainer that produced no text)."""
    return None if seconds is None else round(seconds, 4)


def register(app: typer.Typer) -> None:
    """The ``data`` group itself is registered by tui.cli_data; analyze is added here."""
    app.command("analyze")(analyze)
