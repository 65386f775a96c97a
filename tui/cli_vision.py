"""``ncanvas classify``, ``gradcam``, ``viz ...`` and ``export-json``. No torch at import: heavy work happens in
:mod:`core.vision.api`, imported inside each command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import NcanvasError
from core.paths import JOB_ID_RE
from tui.cli_base import AsJson, Threads, apply_threads, check_output, checkpoint_path, echo_json, workspace

viz_app = typer.Typer(help="Look inside a trained CNN: filters, feature maps, activation maximisation, class models.",
                      no_args_is_help=True)

ImageArg = Annotated[str | None, typer.Argument(help="Image file (PNG/JPG/..., any size or mode).", show_default=False)]
Checkpoint = Annotated[str, typer.Option("--checkpoint", "-c", help="A cnn .pt checkpoint, or a job id (uses its best_model.pt).")]
Sample = Annotated[str | None, typer.Option("--sample", help="A dataset image instead of IMAGE: DATASET:N from the test split (e.g. mnist:123); write train: before N for the training split.")]
DataDir = Annotated[str | None, typer.Option("--data-dir", help="Dataset folder for --sample (default: the checkpoint's, else $NCANVAS_DATA_DIR or <workspace>/data).")]
Png = Annotated[Path | None, typer.Option("--png", help="Also write the picture to this PNG file (- for stdout, "
                                                        "the PNG alone).")]
Width = Annotated[int, typer.Option("--width", help="Terminal picture width in character cells.", min=4, max=400)]
Colors = Annotated[str | None, typer.Option("--colors", help="truecolor or 256 (default: from $COLORTERM).")]
Layer = Annotated[str | None, typer.Option("--layer", help="Layer name, e.g. conv2 (see --list-layers).")]


def _classifier(ctx: typer.Context, checkpoint: str, png: Path | None = None, threads: int | None = None) -> Any:
    from core.vision.api import load_classifier

    check_output(png)  # a --png that cannot be written is refused before the model is loaded
    apply_threads(ctx, threads)
    return load_classifier(checkpoint_path(ctx, checkpoint))


def _image(clf: Any, image: str | None, sample: str | None, data_dir: str | None) -> tuple[Any, str, int | None]:
    """(image, description, true label or None) from IMAGE or --sample."""
    from core.vision.api import load_image

    if (image is None) == (sample is None):
        raise NcanvasError("give exactly one of IMAGE or --sample DATASET:INDEX")
    if sample is not None:
        from core.vision.data import load_sample

        pixels, label, name = load_sample(sample, data_dir or _ckpt_data_dir(clf))
        return pixels, f"{sample} (label {name})", label
    return load_image(image), str(image), None  # type: ignore[arg-type]


def _ckpt_data_dir(clf: Any) -> str | None:
    from core.checkpoint import load_checkpoint

    return (load_checkpoint(clf.path, kind="cnn").get("config") or {}).get("data_dir") or None


def _header(text: str, png: Path | None) -> None:
    """The line above a picture: on stderr when the PNG itself goes to stdout (``--png -``)."""
    typer.echo(text, err=png is not None and str(png) == "-")


def _show(picture: Any, width: int, colors: str | None, png: Path | None, png_scale: int = 8) -> None:
    from core.render import save_png, to_ansi

    if colors not in (None, "truecolor", "256"):
        raise NcanvasError("--colors must be truecolor or 256")
    if png is not None and str(png) == "-":  # the PNG itself is the output: nothing else on stdout
        save_png(picture, "-", scale=png_scale)
        return
    # color=True: click strips ANSI when stdout is not a terminal, but the picture *is* the colours
    typer.echo(to_ansi(_enlarge(picture, width), max_width=width, mode=colors), color=True)
    if png is not None:
        save_png(picture, png, scale=png_scale)
        typer.echo(f"wrote {png}")


def _enlarge(picture: Any, width: int) -> Any:
    # Small images (28x28) look better a bit larger than one pixel per half cell, up to the requested width.
    import numpy as np

    from core.render import to_uint8_rgb

    rgb = to_uint8_rgb(picture)
    k = max(1, width // rgb.shape[1])
    return np.repeat(np.repeat(rgb, k, axis=0), k, axis=1) if k > 1 else rgb


# ===================================================================================== commands


def classify_cmd(ctx: typer.Context, checkpoint: Checkpoint, image: ImageArg = None, sample: Sample = None,
                 top_k: Annotated[int, typer.Option("--top-k", help="How many classes to list.", min=1)] = 5,
                 data_dir: DataDir = None, as_json: AsJson = False, threads: Threads = None,
                 invert: Annotated[bool, typer.Option("--invert", help="Classify the negative of the image (a dark "
                                                      "digit drawn on white, for an MNIST model).")] = False) -> None:
    """Classify an image with a trained CNN checkpoint: top-k classes with probabilities."""
    from core.vision.api import classify
    from core.vision.checks import invert as negative
    from core.vision.checks import opposite_polarity

    clf = _classifier(ctx, checkpoint, threads=threads)
    img, what, label = _image(clf, image, sample, data_dir)
    pixels = clf.pixels(img)
    flipped = not invert and opposite_polarity(pixels, clf.mean)
    if flipped:
        typer.echo(f"note: {what} looks {'dark on light' if sum(clf.mean) / len(clf.mean) < 0.5 else 'light on dark'}"
                   f", the opposite of {clf.dataset}'s training images: the classes below may be wrong; "
                   "--invert classifies its negative", err=True)
    top = classify(clf, negative(pixels) if invert else pixels, top_k)
    if as_json:
        echo_json({"image": what, "label": label, "arch": clf.arch, "dataset": clf.dataset,
                   "inverted": invert, "opposite_polarity": flipped,
                   "top": [{"class": c, "index": clf.class_names.index(c), "prob": p} for c, p in top]})
        return
    typer.echo(f"{what}  [{clf.arch} on {clf.dataset}, epoch {clf.epoch}]")
    for name, p in top:
        typer.echo(f"  {name:>12}  {p:7.2%}  {'█' * round(p * 30)}")


def gradcam_cmd(
    ctx: typer.Context, checkpoint: Checkpoint, image: ImageArg = None, sample: Sample = None,
    layer: Layer = None,
    class_: Annotated[str | None, typer.Option("--class", help="Class to explain: index, name or 'predicted' (the default).")] = None,
    method: Annotated[str, typer.Option("--method", help="gradcam, gradcam++, guided or guided-gradcam.")] = "gradcam",
    png: Png = None, alpha: Annotated[float, typer.Option("--alpha", help="Heat-map opacity.", min=0.0, max=1.0)] = 0.5,
    cmap: Annotated[str, typer.Option("--cmap", help="viridis, inferno, jet or gray.")] = "jet",
    width: Width = 56, colors: Colors = None, data_dir: DataDir = None, as_json: AsJson = False,
    list_layers: Annotated[bool, typer.Option("--list-layers", help="Print the conv layer names and exit.")] = False,
    threads: Threads = None,
) -> None:
    """Explain a prediction: a heat map over the image, printed with ANSI half blocks (and to --png)."""
    from core.render import COLORMAP_NAMES, overlay
    from core.vision.api import METHODS, explain, explanation_warning, layer_names

    clf = _classifier(ctx, checkpoint, png, threads)
    if list_layers:
        typer.echo("\n".join(layer_names(clf)))
        return
    if method not in METHODS:
        raise NcanvasError(f"--method must be one of {', '.join(METHODS)}; got {method!r}")
    if cmap not in COLORMAP_NAMES:
        raise NcanvasError(f"--cmap must be one of {', '.join(COLORMAP_NAMES)}; got {cmap!r}")
    img, what, label = _image(clf, image, sample, data_dir)
    ex = explain(clf, img, method, class_, layer)
    warning = explanation_warning(clf, ex)
    names = clf.class_names
    if as_json:
        echo_json({"image": what, "label": label, "method": method, "layer": ex.layer, "target": ex.target,
                   "predicted": ex.predicted, "prob": float(ex.probs[ex.predicted]), "warning": warning,
                   "heat": [[round(float(v), 4) for v in row] for row in ex.heat]})
        return
    _header(f"{what}: predicted {names[ex.predicted]} ({ex.probs[ex.predicted]:.1%}); {method} for class "
            f"{names[ex.target]}" + (f" at {ex.layer}" if ex.layer else ""), png)
    if warning:  # the map would only paint noise: say why instead of drawing it
        _header(f"{warning} (no heat map drawn" + (", no PNG written)" if png else ")"), png)
        return
    _show(overlay(clf.display(img), ex.heat, cmap=cmap, alpha=alpha), width, colors, png)


@viz_app.command("filters")
def viz_filters(ctx: typer.Context, checkpoint: Checkpoint, layer: Layer = None, png: Png = None,
                width: Width = 48, colors: Colors = None) -> None:
    """Show a conv layer's filter weights as a grid (zero = grey; default: the first conv)."""
    from core.vision.api import filters_image, layer_names

    clf = _classifier(ctx, checkpoint, png)
    picture = filters_image(clf, layer)
    _header(f"filters of {layer or layer_names(clf)[0]} (zero = grey)", png)
    _show(picture, width, colors, png, png_scale=16)


@viz_app.command("features")
def viz_features(ctx: typer.Context, checkpoint: Checkpoint, image: ImageArg = None, sample: Sample = None,
                 layer: Layer = None, png: Png = None, width: Width = 80, colors: Colors = None,
                 data_dir: DataDir = None) -> None:
    """Show one layer's feature maps for an image (default: the first conv)."""
    from core.vision.api import features_image, layer_names

    clf = _classifier(ctx, checkpoint, png)
    img, what, _ = _image(clf, image, sample, data_dir)
    picture = features_image(clf, img, layer)
    _header(f"feature maps of {layer or layer_names(clf)[0]} for {what}", png)
    _show(picture, width, colors, png, png_scale=4)


@viz_app.command("maxact")
def viz_maxact(ctx: typer.Context, checkpoint: Checkpoint, layer: Layer = None,
               filter_: Annotated[int, typer.Option("--filter", help="Filter (channel) index.", min=0)] = 0,
               steps: Annotated[int, typer.Option("--steps", help="Gradient-ascent steps.", min=1, max=10_000)] = 128,
               seed: Annotated[int, typer.Option("--seed")] = 0,
               png: Png = None, width: Width = 56, colors: Colors = None) -> None:
    """Activation maximisation: the input pattern that most excites one filter (default: last conv)."""
    from core.vision.api import layer_names, maxact_image
    from core.vision.checks import stretch

    clf = _classifier(ctx, checkpoint, png)
    picture, lo, hi = stretch(maxact_image(clf, layer, filter_, steps, seed))
    _header(f"the input that most excites filter {filter_} of {layer or layer_names(clf)[-1]} ({steps} steps; "
            f"scaled from its own range {lo:.2f}..{hi:.2f} to black..white)", png)
    _show(picture, width, colors, png)


@viz_app.command("class-model")
def viz_class_model(ctx: typer.Context, checkpoint: Checkpoint,
                    class_: Annotated[str, typer.Option("--class", help="Class index or name.")] = "0",
                    steps: Annotated[int, typer.Option("--steps", help="Gradient-ascent steps.", min=1, max=10_000)] = 128,
                    seed: Annotated[int, typer.Option("--seed")] = 0,
                    png: Png = None, width: Width = 56, colors: Colors = None) -> None:
    """Class-model visualisation: an input that maximises one class score."""
    from core.vision.api import class_model_image

    clf = _classifier(ctx, checkpoint, png)
    picture = class_model_image(clf, class_, steps, seed)
    _header(f"an input that maximises class {clf.class_names[clf.class_index(class_)]} ({steps} steps)", png)
    _show(picture, width, colors, png)


def export_json_cmd(
    ctx: typer.Context, run: Annotated[str, typer.Argument(help="Job id (e.g. cnn-0001) or a checkpoints/<id> folder.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (default: checkpoints/<id>/export.json).")] = None,
    samples: Annotated[int, typer.Option("--samples", help="Sample images with feature maps.", min=0, max=8)] = 4,
) -> None:
    """Write the browser-demo JSON of a cnn run: weights and feature maps per saved epoch, metrics, architecture."""
    from core.vision.export import export_run

    check_output(out)
    if JOB_ID_RE.match(run) and not Path(run).is_dir():
        paths = workspace(ctx).run(run)
        ckpt_dir, metrics = paths.ckpt_dir, paths.metrics
    else:
        ckpt_dir = Path(run)
        metrics = ckpt_dir.parent.parent / "logs" / ckpt_dir.name / "metrics.jsonl"
    res = export_run(ckpt_dir, metrics if metrics.is_file() else None, out or ckpt_dir / "export.json", samples)
    part = res["partial"]
    extra = f" + latest.pt stopped mid-epoch {part['epoch'] + 1} (step {part['step']})" if part else ""
    typer.echo(f"wrote {res['path']} ({res['bytes'] / 1e6:.1f} MB; epochs {res['epochs']}{extra}, "
               f"{res['samples']} samples)")


def register(app: typer.Typer) -> None:
    app.command("classify")(classify_cmd)
    app.command("gradcam")(gradcam_cmd)
    app.command("export-json")(export_json_cmd)
    app.add_typer(viz_app, name="viz")
