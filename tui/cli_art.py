"""``ncanvas data art-synthetic`` and ``ncanvas analyze`` (image -> CNN -> Grad-CAM -> streamed explanation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from core.errors import NcanvasError
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
    import time

    from core.art.synthetic import write_dataset

    if out.exists() and not out.is_dir():
        raise NcanvasError(f"--out {out} exists and is not a folder")
    t0 = time.perf_counter()
    csv_path = write_dataset(out, n, seed=seed, size=size)
    info = {"csv": str(csv_path), "images": n, "seconds": round(time.perf_counter() - t0, 2)}
    typer.echo(json.dumps(info) if as_json else f"wrote {n} images and {csv_path} in {info['seconds']}s")


def _bar(p: float, width: int = 20) -> str:
    return "█" * int(round(p * width))


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
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, max=4096)] = 160,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, max=5.0, help="0: greedy.")] = 0.7,
    top_k_sampling: Annotated[int, typer.Option("--sample-top-k", min=0, help="top-k sampling (0: off).")] = 50,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 0.95,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (no pictures, no streaming).")] = False,
) -> None:
    """Image -> art CNN (artist, style, genre) -> Grad-CAM per head -> the LLM's explanation, streamed."""
    import time

    from core.art.api import head_cams, load_art_classifier, logits, predict
    from core.render import overlay, save_png, tile_grid, to_ansi
    from tui.cli_vision import _checkpoint_path

    t0 = time.perf_counter()
    from core.render import COLORMAP_NAMES

    if cmap not in COLORMAP_NAMES:
        raise NcanvasError(f"--cmap must be one of {', '.join(COLORMAP_NAMES)}; got {cmap!r}")
    if colors not in (None, "truecolor", "256"):
        raise NcanvasError("--colors must be truecolor or 256")
    if out is not None and out.exists() and not out.is_dir():
        raise NcanvasError(f"--out {out} exists and is not a folder")
    if compare and not llm:
        raise NcanvasError("--compare needs --llm as the first explainer")
    clf = load_art_classifier(_checkpoint_path(ctx, cnn))
    pixels = clf.pixels(image)
    preds = predict(clf, pixels, top_k=top_k)
    cams = head_cams(clf, pixels, method=method)
    base = pixels.astype("float32") / 255.0
    overlays = {h: overlay(base, cam, cmap=cmap, alpha=alpha) for h, cam in cams.items()}
    from tui.cli import workspace

    if out is None:  # one folder per image file: two paintings called cat.png do not share one
        import hashlib

        tag = hashlib.sha1(str(image.resolve()).encode()).hexdigest()[:8]
        out = workspace(ctx).root / "analyze" / f"{image.stem}-{tag}"
    pngs = {h: str(save_png(ov, out / f"gradcam_{h}.png", scale=4)) for h, ov in overlays.items()}
    cnn_s = time.perf_counter() - t0
    from core.explain import prompt_from_logits

    prompt = prompt_from_logits(logits(clf, pixels), labels=clf.labels)
    if not as_json:
        typer.echo(to_ansi(base, max_width=width, mode=colors), color=True)
        for head, items in preds.items():
            typer.echo(f"{head.title():<7}" + "   ".join(f"{n} {p:6.1%}" for n, p in items[:1]))
            for name, p in items:
                typer.echo(f"   {name[:28]:<28} {p:6.1%} {_bar(p)}")
        typer.echo("Grad-CAM: " + "  |  ".join(f"{h} -> {preds[h][0][0]}" for h in cams))
        typer.echo(to_ansi(tile_grid([overlays[h] for h in cams], cols=3), max_width=3 * width, mode=colors),
                   color=True)
        typer.echo(f"(CAM PNGs in {out}; CNN {cnn_s:.2f}s)")
    explanations: list[dict[str, str]] = []
    if llm:
        from core.llm.generate import load_explainer
        from core.llm.sampling import SamplingSettings
        from tui.cli_llm import _stream_side_by_side

        sources = [_checkpoint_path(ctx, llm)] + ([_checkpoint_path(ctx, compare)] if compare else [])
        explainers = [load_explainer(src) for src in sources]
        settings = SamplingSettings(max_new_tokens, temperature, top_k_sampling, top_p, 1.1, seed)
        if as_json:
            texts = [ex.explain(prompt, settings) for ex in explainers]
        else:
            typer.echo("\n" + prompt)
            if len(explainers) == 2:
                texts = _stream_side_by_side(explainers, prompt, settings)
            else:
                texts = [""]
                for delta in explainers[0].stream(prompt, settings):
                    texts[0] += delta
                    typer.echo(delta, nl=False)
                typer.echo("")
        explanations = [{"checkpoint": str(src), "text": text} for src, text in zip(sources, texts)]
    if as_json:
        typer.echo(json.dumps({
            "image": str(image), "predictions": {h: [{"label": n, "prob": p} for n, p in v] for h, v in preds.items()},
            "cams": pngs, "method": method, "prompt": prompt, "explanations": explanations,
            "seconds": round(time.perf_counter() - t0, 3),
        }, indent=2))


def register(app: typer.Typer) -> None:
    """The ``data`` group itself is registered by tui.cli_data; analyze is added here."""
    app.command("analyze")(analyze)
