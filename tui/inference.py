"""The dashboard's only door to the torch side: checkpoints, classify, Grad-CAM, views, LLM streaming.

Every function here blocks (loads models, runs torch): call it from a thread worker only. Module scope stays
light: the vision API (``core.vision.api``), the renderer (``core.render``) and the LLM explainer are imported
inside the functions.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import NcanvasError
from core.paths import Workspace
from core.runrec import FINISHED, PAUSED, RUNNING, STOPPED, STOPPING
from core.sampling_defaults import EXPLAIN, SamplingDefaults

CNN_KINDS = ("cnn",)
LLM_KINDS = ("llm", "gpt2")
ART_KINDS = ("artcnn",)
CKPT_ORDER = ("best_model.pt", "latest.pt")
CAM_METHODS = ("gradcam", "gradcam++", "guided", "guided-gradcam")
VIEWS = ("overlay", "heatmap", "filters", "features", "maxact")


# ============================================================================================ checkpoints (light)


LIVE_OR_DONE = (FINISHED, RUNNING, PAUSED, STOPPING, STOPPED)  # states whose best_model.pt may be chosen


@dataclass(frozen=True)
class CheckpointChoice:
    label: str  # "cnn-0003/best_model.pt · mnist", "cnn-0001/epoch_0.pt (untrained)"
    path: str
    job_id: str
    kind: str
    state: str = ""  # the job's state
    dataset: str | None = None  # what a vision job trained on
    metric: str = "-"  # the job's headline metric, "val_acc=0.981"
    score: float | None = None  # that metric's value, oriented so that higher is better
    preferred: bool = False  # may be preselected: a best_model.pt of a finished or running job

    @property
    def info(self) -> str:
        """One line next to the picker: which job, trained on what, how good, in what state."""
        parts = [self.job_id, self.kind, self.dataset or "", self.metric if self.metric != "-" else "", self.state]
        return " · ".join(p for p in parts if p)


def _choice(st: Any, path: Path) -> CheckpointChoice:
    from jobs.kinds import KINDS
    from tui.fmt import headline_metric

    rec = st.record
    spec = KINDS.get(rec.kind)
    progress = rec.progress if isinstance(rec.progress, dict) else {}
    value = progress.get(spec.headline) if spec is not None and spec.headline else None
    score = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        score = float(value) if spec is None or spec.higher_is_better else -float(value)
    dataset = rec.config.get("dataset") if isinstance(rec.config, dict) else None
    untrained = path.name == "epoch_0.pt"
    tags = [t for t in (str(dataset) if dataset else "", "untrained" if untrained else "",
                        st.state if st.state not in LIVE_OR_DONE else "") if t]
    label = f"{rec.id}/{path.name}" + (f" · {' · '.join(tags)}" if tags else "")
    return CheckpointChoice(label, str(path), rec.id, rec.kind, st.state, str(dataset) if dataset else None,
                            headline_metric(progress, rec.kind), score,
                            path.name == "best_model.pt" and st.state in LIVE_OR_DONE)


def list_checkpoints(ws: Workspace, kinds: tuple[str, ...]) -> list[CheckpointChoice]:
    """Checkpoint files of the workspace's jobs of ``kinds``: every job's best and latest first (newest job first),
    then the ``epoch_<n>.pt`` files (``epoch_0.pt`` is the untrained start). Use :func:`preferred` for the default."""
    from jobs.supervisor import list_status

    main: list[CheckpointChoice] = []
    epochs: list[CheckpointChoice] = []
    for st in reversed(list_status(ws)):
        if st.record.kind not in kinds:
            continue
        ckpt_dir = ws.run(st.id).ckpt_dir
        if not ckpt_dir.is_dir():
            continue
        files = [p for p in ckpt_dir.iterdir() if p.suffix == ".pt" and p.is_file()]
        files.sort(key=lambda p: (CKPT_ORDER.index(p.name) if p.name in CKPT_ORDER else 2,
                                  int("".join(filter(str.isdigit, p.name)) or 0), p.name))  # epoch_2 before epoch_10
        for p in files:
            (main if p.name in CKPT_ORDER else epochs).append(_choice(st, p))
    return main + epochs


def _spare_running_jobs(ckpt: str) -> None:
    """torch's thread count for this inference: the cores the running jobs of the checkpoint's workspace leave
    free (:mod:`core.threads`, the CLI's policy too)."""
    from core.threads import use_inference_threads

    use_inference_threads(near=ckpt)


def preferred(choices: list[CheckpointChoice], dataset: str | None = None) -> CheckpointChoice | None:
    """The default checkpoint: the ``best_model.pt`` of the best finished (or still running) job, among those
    trained on ``dataset`` when any was; finished jobs first at equal scores. Never an untrained ``epoch_0.pt``,
    a ``latest.pt`` or a failed job's file (those are listed, not preselected); None when there is no such file."""
    pool = [c for c in choices if c.preferred]
    if dataset is not None and any(c.dataset == dataset for c in pool):
        pool = [c for c in pool if c.dataset == dataset]
    if not pool:
        return None
    return max(pool, key=lambda c: (c.score is not None, c.score or 0.0, c.state == FINISHED))


def spec_dataset(image_spec: str) -> str | None:
    """The dataset an image spec names (``mnist:7`` -> ``mnist``), or None for a path or ``sample:N``."""
    head, sep, _ = image_spec.strip().partition(":")
    if not sep or head in ("sample", "") or "/" in head or "." in head:
        return None
    return head


# ============================================================================================ vision


_models: dict[tuple[str, float], Any] = {}
_models_lock = threading.Lock()


def load_classifier(path: str) -> Any:
    """The vision API's classifier for a ``cnn`` checkpoint, cached while the file is unchanged."""
    from core.vision import api
    p = Path(path)
    if not p.is_file():
        raise NcanvasError(f"checkpoint not found: {p}")
    key = (str(p.resolve()), p.stat().st_mtime)
    with _models_lock:
        if key not in _models:
            _models.clear()  # one model at a time: memory stays bounded
            _models[key] = api.load_classifier(p)
        return _models[key]


def resolve_image(clf: Any, spec: str) -> tuple[Any, int | None, str]:
    """An image from a spec: ``sample:N`` (stored in the checkpoint), ``mnist:123`` (dataset), or a path.

    Returns (image, true label or None, description).
    """
    spec = spec.strip()
    if not spec:
        raise NcanvasError("give an image path, sample:N (from the checkpoint) or DATASET:INDEX (e.g. mnist:7)")
    if spec.startswith("sample:"):
        idx = spec.split(":", 1)[1]
        samples = getattr(clf, "samples", None)
        if samples is None or not len(samples):
            raise NcanvasError("this checkpoint stores no sample images; give a path or DATASET:INDEX")
        if not idx.isdigit() or int(idx) >= len(samples):
            raise NcanvasError(f"sample index must be 0..{len(samples) - 1}; got {idx!r}")
        i = int(idx)
        labels = getattr(clf, "sample_labels", [])
        return samples[i], (labels[i] if i < len(labels) else None), f"sample {i}"
    if ":" in spec and not Path(spec).exists() and not spec.startswith(("/", ".", "~")):
        from core.vision.data import load_sample

        pixels, label, _ = load_sample(spec, _data_dir(clf))
        return pixels, label, spec
    return str(Path(spec).expanduser()), None, Path(spec).name


def _data_dir(clf: Any) -> str | None:
    """Where ``DATASET:N`` samples are read: $NCANVAS_DATA_DIR, else the folder the checkpoint trained on."""
    if os.environ.get("NCANVAS_DATA_DIR"):
        return os.environ["NCANVAS_DATA_DIR"]
    from core.checkpoint import load_checkpoint

    return (load_checkpoint(clf.path, kind="cnn").get("config") or {}).get("data_dir") or None


@dataclass
class Classification:
    image: Any  # (H, W, 3) float [0, 1] as the model sees it
    top: list[tuple[str, float]]
    truth: str | None
    description: str
    classes: list[str] = field(default_factory=list)
    note: str | None = None  # e.g. the image's polarity is the opposite of the training images'


def prepared(clf: Any, image_spec: str, invert: bool = False) -> tuple[Any, int | None, str, str | None]:
    """(pixels as the model sees them, true label, description, note): the image of a spec, inverted on request;
    the note says when its polarity is the opposite of the training images' (core.vision.checks)."""
    from core.vision.checks import invert as negative
    from core.vision.checks import opposite_polarity

    image, label, what = resolve_image(clf, image_spec)
    pixels = clf.pixels(image)
    if invert:
        return negative(pixels), label, f"{what} (inverted)", None
    note = None
    if opposite_polarity(pixels, clf.mean):
        note = (f"the image's polarity is the opposite of {clf.dataset}'s training images (its background is "
                f"{'light' if sum(clf.mean) / len(clf.mean) < 0.5 else 'dark'}): press i to invert it")
    return pixels, label, what, note


def classify(ckpt: str, image_spec: str, top_k: int = 5, invert: bool = False) -> Classification:
    _spare_running_jobs(ckpt)
    from core.vision import api

    clf = load_classifier(ckpt)
    image, label, what, note = prepared(clf, image_spec, invert)
    top = api.classify(clf, image, top_k=top_k)
    truth = clf.class_names[label] if label is not None else None
    return Classification(clf.display(image), top, truth, what, list(clf.class_names), note)


@dataclass
class CamResult:
    image: Any  # (H, W, 3) float [0, 1]
    heat: Any  # (H, W) float [0, 1]
    method: str
    layer: str | None
    target: int
    predicted: int
    prob: float  # probability of the target class
    classes: list[str]
    layers: list[str]
    warning: str | None = None  # an empty or nearly flat map: what to try instead (drawn without the heat)
    note: str | None = None  # the image's polarity


def gradcam(ckpt: str, image_spec: str, method: str, target: int | None, layer: str | None,
            invert: bool = False) -> CamResult:
    _spare_running_jobs(ckpt)
    from core.vision import api

    clf = load_classifier(ckpt)
    image, _, _, note = prepared(clf, image_spec, invert)
    ex = api.explain(clf, image, method=method, target=target, layer=layer)
    return CamResult(clf.display(image), ex.heat, ex.method, ex.layer, ex.target, ex.predicted,
                     float(ex.probs[ex.target]), list(clf.class_names), api.layer_names(clf),
                     api.explanation_warning(clf, ex), note)


def view_image(ckpt: str, image_spec: str, view: str, layer: str | None, channel: int = 0,
               invert: bool = False) -> tuple[Any, str]:
    """The filters / feature maps / activation-maximisation picture of ``layer`` (an array to render) and a caption
    for it."""
    _spare_running_jobs(ckpt)
    from core.vision import api
    from core.vision.checks import stretch

    clf = load_classifier(ckpt)
    if view == "filters":
        return api.filters_image(clf, layer), "zero = grey"
    if view == "features":
        image, _, _, _ = prepared(clf, image_spec, invert)
        return api.features_image(clf, image, layer), ""
    if view == "maxact":
        picture, lo, hi = stretch(api.maxact_image(clf, layer, channel=channel, steps=64))
        return picture, f"filter {channel}, scaled from its own range {lo:.2f}..{hi:.2f} to black..white"
    raise NcanvasError(f"unknown view {view!r}; views: {', '.join(VIEWS)}")


def render(image: Any, max_width: int, max_rows: int | None = None) -> Any:
    """An RGB/grey array as half-block rich Text fitting ``max_width`` cells (and ``max_rows`` text rows)."""
    import numpy as np

    from core import render as r

    a = np.asarray(image)
    h, w = a.shape[:2]
    # small images (28x28 digits) are enlarged by whole pixels so they fill the pane instead of a corner
    factor = max(1, min(max_width // max(1, w), (2 * max_rows) // max(1, h) if max_rows else 8, 8))
    if factor > 1:
        a = a.repeat(factor, axis=0).repeat(factor, axis=1)
    return r.to_rich_text(a, max_width=max(4, max_width), max_rows=max_rows)


def blend(image: Any, heat: Any, alpha: float) -> Any:
    from core.render import overlay

    return overlay(image, heat, "jet", alpha)


def heatmap(heat: Any) -> Any:
    from core.render import apply_colormap

    return apply_colormap(heat, "jet")


# ============================================================================================ LLM


@dataclass
class GenSettings:
    """Sampling settings as the panes hold them (``core.sampling_defaults``: the CLI's defaults too)."""

    temperature: float = EXPLAIN.temperature
    top_k: int = EXPLAIN.top_k
    top_p: float = EXPLAIN.top_p
    repetition_penalty: float = EXPLAIN.repetition_penalty
    max_new_tokens: int = EXPLAIN.max_new_tokens
    seed: int | None = EXPLAIN.seed

    @classmethod
    def of(cls, d: SamplingDefaults) -> GenSettings:
        return cls(d.temperature, d.top_k, d.top_p, d.repetition_penalty, d.max_new_tokens, d.seed)


_explainers: dict[tuple[str, float], Any] = {}


def load_explainer(path: str) -> Any:
    """The LLM explainer (``core.llm.generate``) for an llm/gpt2 checkpoint; two kept for side-by-side."""
    from core.llm import generate as gen

    p = Path(path)
    if not p.exists():
        raise NcanvasError(f"checkpoint not found: {p}")
    key = (str(p.resolve()), p.stat().st_mtime)
    with _models_lock:
        if key not in _explainers:
            while len(_explainers) >= 2:
                _explainers.pop(next(iter(_explainers)))
            _explainers[key] = gen.load_explainer(p)
        return _explainers[key]


def explain_grounded(ckpt: str, prompt: str, settings: GenSettings, cancel: threading.Event,
                     decode: str | None = None, tries: int = 4) -> Iterator[Any]:
    """Grounded explanation events for a pane (``core.llm.grounded.Event``): ``delta`` (text of the try shown),
    ``restart`` (clear it: a retry replaces it), ``done`` (``.result``: the kept text, its verdict with ``.check``;
    ``verdict_marks`` turns that into ✓/✗ items). ``decode`` None: the default (constrain and resample)."""
    _spare_running_jobs(ckpt)
    from core.llm.grounded import DEFAULT_DECODE, grounded_stream

    yield from grounded_stream(load_explainer(ckpt), prompt, _sampling(settings), decode or DEFAULT_DECODE, tries,
                               cancel)


def _sampling(settings: GenSettings) -> Any:
    """The pane's settings as ``core.llm.sampling.SamplingSettings`` (torch-side; imported on first use)."""
    from core.llm.sampling import SamplingSettings

    return SamplingSettings(max_new_tokens=settings.max_new_tokens, temperature=settings.temperature,
                            top_k=settings.top_k, top_p=settings.top_p,
                            repetition_penalty=settings.repetition_penalty, seed=settings.seed)


def verdict_marks(result: Any, prompt: str) -> list[tuple[bool, str]]:
    """``[(ok, "artist Claude Monet"), (False, "80.7%"), ...]`` for a ``done`` event's result; [] for a free-form
    prompt (nothing to check against)."""
    from core.explain import parse_prompt
    from core.explain.check import marks

    parsed = parse_prompt(prompt)
    return [] if result.check is None or parsed is None else marks(result.check, parsed[0])


def _typed_part(part: str) -> tuple[str, float]:
    """``Claude Monet 96.2%`` (or ``(96.2)``, or no number: 90 %, ``ncanvas explain``'s default) -> name, conf."""
    m = _TYPED_PART.match(part)
    if not m or not m.group(1).strip():
        return part, 90.0
    conf = float(m.group(2))
    if not 0.0 <= conf <= 100.0:
        raise NcanvasError(f"confidence must be a percentage in [0, 100]; got {conf:g} in {part!r}")
    return m.group(1).strip(), conf


def build_prompt(text: str) -> str:
    """The explainer's prompt: ``artist, style, genre`` typed in the pane, each optionally with its confidence
    (``Claude Monet 96.2%, Impressionism 94.8%, landscape``), becomes the dataset's prompt format (names as
    spelled in the label tables; an unknown name is one error line with the closest names). A full prompt is used
    as it is; anything else is one error line, since the explainers were trained on that format only."""
    from core.explain import parse_prompt

    if parse_prompt(text) is not None:
        return text
    parts = [p.strip() for p in text.split(",")]
    if "\n" in text or len(parts) != 3 or not all(parts):
        raise NcanvasError("type artist, style, genre (optionally with confidences: Claude Monet 96%, "
                           "Impressionism 95%, landscape 91%), or analyze a painting in the Analyze pane")
    from core.explain import HEADS, canonical_label, format_prompt

    (a, ac), (st, sc), (g, gc) = (_typed_part(p) for p in parts)
    a, st, g = (canonical_label(v, h) for v, h in zip((a, st, g), HEADS))
    return str(format_prompt(a, ac, st, sc, g, gc))


_TYPED_PART = re.compile(r"^(.*?)[\s(]*(\d+(?:\.\d+)?)\s*%?\s*\)?$")


def prompt_line(prompt: str) -> str:
    """The one-line form of a dataset-format prompt, as typed in the Explain pane:
    ``Claude Monet 96.2%, Impressionism 94.8%, Landscape 91.3%`` (``build_prompt`` turns it back)."""
    from core.explain import parse_prompt

    parsed = parse_prompt(prompt)  # either prompt format version
    if parsed is None:
        raise NcanvasError("not an art classification prompt (Artist/Style/Genre lines)")
    case = parsed[0]
    return ", ".join(f"{case[h]} {c:.1f}%" for h, c in zip(("artist", "style", "genre"), case["confidences"]))


# ============================================================================================ analyze (issue 7)


@dataclass
class Analysis:
    image: Any  # (H, W, 3) float [0, 1]
    heads: dict[str, list[tuple[str, float]]]  # {"artist": [(name, p), ...top-3], "style": ..., "genre": ...}
    cams: dict[str, Any]  # head -> (H, W) heat in [0, 1]
    prompt: str


def _art_prompt(api: Any, clf: Any, image: Any) -> str:
    """The LLM prompt for the top-1 triple, exactly as the explanation dataset formats it."""
    from core.explain import prompt_from_logits

    return str(prompt_from_logits(api.logits(clf, image), clf.labels))


def analyze(cnn_ckpt: str, image_path: str) -> Analysis:
    """Top-3 per head and a Grad-CAM per head from an ``artcnn`` checkpoint (``core.art.api``)."""
    _spare_running_jobs(cnn_ckpt)
    from core.art import api
    from core.vision.api import load_image

    p = Path(cnn_ckpt)
    if not p.is_file():
        raise NcanvasError(f"checkpoint not found: {p}")
    image_path = image_path.strip()
    if not image_path:
        raise NcanvasError("give the path of a painting (an image file)")
    key = ("art:" + str(p.resolve()), p.stat().st_mtime)
    with _models_lock:
        if key not in _models:
            _models.clear()
            _models[key] = api.load_art_classifier(p)
        clf = _models[key]
    image = load_image(Path(image_path).expanduser())
    heads = api.predict(clf, image, top_k=3)
    cams = api.head_cams(clf, image)
    pixels = clf.pixels(image).astype("float32") / 255.0
    return Analysis(pixels, heads, cams, _art_prompt(api, clf, image))
