"""Grad-CAM latency per image: ncanvas's GradCAM vs captum's LayerGradCam on the same model and input.

Both produce the same thing: the ReLU'd Grad-CAM map, bilinearly upsampled to the input and min-max scaled per
sample (the parity test checks they agree to 1e-5). Hooks are set up once, outside the timed loop, for both.

    python bench/bench_gradcam.py [--repeats 200] [--threads 0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _median_ms(fns, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Median ms per call of each function, interleaved so load changes on a shared machine hit both alike."""
    for fn in fns:
        for _ in range(5):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) * 1e3 for ts in times]


def bench(name: str, c: int, size: int, layer: str, batch: int, repeats: int) -> tuple[float, float]:
    import torch
    from captum.attr import LayerAttribution, LayerGradCam

    from core.vision.interpret.cam import GradCAM, minmax_per_sample
    from core.vision.models import build_model

    torch.manual_seed(0)
    model = build_model(name, c, 10, size).eval()
    x = torch.randn(batch, c, size, size)
    targets = [i % 10 for i in range(batch)]
    lgc = LayerGradCam(model, dict(model.named_modules())[layer])

    def captum_once() -> None:
        a = lgc.attribute(x, target=targets, relu_attributions=True)
        minmax_per_sample(LayerAttribution.interpolate(a, (size, size), "bilinear")[:, 0]).detach().cpu().numpy()

    with GradCAM(model, layer) as cam:
        ours, theirs = _median_ms([lambda: cam(x, targets), captum_once], repeats)
    return ours / batch, theirs / batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    print(f"{'model':<24}{'batch':>6}{'ours ms/img':>14}{'captum ms/img':>16}{'captum/ours':>13}")
    for name, c, size, layer in (("simplecnn", 1, 28, "conv2"), ("simplenet", 3, 32, "features.conv13")):
        for batch in (1, 32):
            reps = args.repeats if name == "simplecnn" else max(10, args.repeats // 10)
            ours, theirs = bench(name, c, size, layer, batch, reps)
            print(f"{name + f' {c}x{size}x{size}':<24}{batch:>6}{ours:>14.3f}{theirs:>16.3f}{theirs / ours:>12.2f}x",
                  flush=True)


if __name__ == "__main__":
    main()
