"""Inference beside a training job: torch's default threads (one per core) vs core.threads' policy (the cores
the running jobs leave free), measured in the same run on the same machine.

A CPU ``demo`` job that keeps every core busy (wide layers, big batches, torch's default threads) trains in the
background; meanwhile the same inference calls run with each thread count in turn (interleaved, so load changes
hit both alike): a Grad-CAM on a SimpleNet checkpoint (what ``classify``/``gradcam`` do) and a forward pass of a
small Llama-style explainer over 128 tokens (what each step of ``explain`` does). Prints medians and the ratio
old / new (> 1: the policy is faster).

    python bench/bench_threads.py [--repeats 15] [--no-job]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _median_s(fns: list[Callable[[], object]], threads: list[int], repeats: int) -> list[float]:
    import torch

    times: list[list[float]] = [[] for _ in fns]
    for i in range(repeats + 2):
        for k, (fn, n) in enumerate(zip(fns, threads, strict=True)):
            torch.set_num_threads(n)
            t0 = time.perf_counter()
            fn()
            if i >= 2:  # two warm-up rounds
                times[k].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def _workloads(root: Path) -> dict[str, Callable[[], object]]:
    import numpy as np
    import torch

    from core.checkpoint import make_checkpoint, save_checkpoint
    from core.llm.model import ArtExpertLM, LMConfig
    from core.vision.api import explain, load_classifier
    from core.vision.models import build_model

    torch.manual_seed(0)
    meta = {"dataset": "cifar10", "in_channels": 3, "num_classes": 10, "image_size": 32, "mean": [0.5] * 3,
            "std": [0.25] * 3, "class_names": [str(i) for i in range(10)], "model": "simplenet"}
    ck = make_checkpoint(kind="cnn", arch="simplenet", config={}, model=build_model("simplenet", 3, 10, 32).state_dict(),
                         extra={"vision": meta})
    clf = load_classifier(save_checkpoint(ck, root / "simplenet.pt"))
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    lm = ArtExpertLM(LMConfig(vocab_size=8192, block_size=256, n_layer=4, n_head=8, n_kv_head=2, d_model=256,
                              d_ff=1024)).eval()
    tokens = torch.randint(0, 8192, (1, 128))

    def llm_forward() -> object:
        with torch.no_grad():
            return lm(tokens)

    return {"gradcam (SimpleNet, 32x32)": lambda: explain(clf, image, "gradcam"),
            "explainer forward (4x256, 128 tokens)": llm_forward}


def _start_busy_job(ws: object) -> str:
    from jobs import supervisor as sv

    rec, _ = sv.start_job(ws, "demo", {"epochs": 10_000, "steps_per_epoch": 100, "batch_size": 8192,
                                       "hidden": 4096}, job_id="busy")
    deadline = time.monotonic() + 60
    while sv.job_status(ws, rec.id).state != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)  # past its imports: training at full speed
    return rec.id


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--no-job", action="store_true", help="measure without a job beside (the idle baseline)")
    args = p.parse_args()
    import torch

    from core.paths import Workspace
    from core.threads import cpu_cores, inference_threads
    from jobs import supervisor as sv

    default = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "ws").ensure()
        work = _workloads(Path(tmp))
        job = None if args.no_job else _start_busy_job(ws)
        try:
            policy = inference_threads(ws=ws)
            print(f"{cpu_cores()} cores; a CPU job {'training beside' if job else 'absent'}; torch default "
                  f"{default} threads, policy {policy}")
            for name, fn in work.items():
                old, new = _median_s([fn, fn], [default, policy], args.repeats)
                print(f"{name:<40} default {old * 1e3:8.1f} ms   policy {new * 1e3:8.1f} ms   ratio {old / new:5.2f}x")
            if job:
                st = sv.job_status(ws, job)
                print(f"the job beside was {st.state} throughout: step {st.record.progress.get('step')}")
                if st.state != "running":
                    raise SystemExit(f"the job did not keep running ({st.reason}): the numbers above are not valid")
        finally:
            if job and sv.job_status(ws, job).alive:
                sv.kill(ws, job, grace=1)


if __name__ == "__main__":
    main()
