"""The one training loop (jobs/loop.py): what it owns is the same for every kind.

Every kind runs in-process under a real JobRuntime on tiny data: the same events (early stop, evaluations),
throughput in the kind's unit, the same checkpoint files and a bit-identical stop/resume. Then the loop's own
mechanics: DDP sharding, the non-finite guard, accumulation and the stop protocol.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from core.checkpoint import load_checkpoint
from core.metrics import iter_rows
from jobs.kinds import KINDS
from tests.jobhelpers import untimed
from tests.vision_helpers import make_art_set, make_idx_dataset, make_runtime

TINY_LM = {"tokenizer": "bpe", "n_pairs": 160, "epochs": 2, "batch_size": 16, "eval_max": 16, "warmup_steps": 2,
           "lr": 3e-3, "n_layer": 1, "d_model": 32, "n_head": 2, "n_kv_head": 1, "d_ff": 64, "block_size": 320,
           "bpe_vocab": 400, "checkpoint_every": 0, "faith_eval": 8}


@pytest.fixture(scope="module")
def kind_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """A tiny config per kind (GPT-2 shares the LM task with llm and needs a local base model: see
    tests/test_llm_train.py)."""
    root = tmp_path_factory.mktemp("kinds")
    make_idx_dataset(root / "mnist", n_train=120, n_test=40)
    art = make_art_set(root / "art", n=40, size=16)
    return {
        "demo": {"epochs": 2, "steps_per_epoch": 12, "batch_size": 8},
        "cnn": {"data_dir": str(root / "mnist"), "epochs": 2, "batch_size": 16, "val_fraction": 0.2},
        "artcnn": {"data": str(art), "epochs": 2, "batch_size": 8, "image_size": 16, "backbone": "resnet18"},
        "llm": dict(TINY_LM),
    }


def run_kind(ws: Any, kind: str, job_id: str, values: dict[str, Any], **kw: Any) -> Any:
    """The kind's ``train()`` in this process under a real runtime, on one CPU thread."""
    from jobs.kinds import kind_module

    rt = make_runtime(ws, job_id, values, kind=kind, **kw)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        kind_module(kind).train(rt, rt.config)
    finally:
        torch.set_num_threads(threads)
        rt.metrics.close()
    return rt


def _events(rt: Any, name: str) -> list[dict[str, Any]]:
    return [r for r in iter_rows(rt.paths.metrics) if r.get("event") == name]


KINDS_HERE = ("demo", "cnn", "artcnn", "llm")


@pytest.mark.parametrize("kind", KINDS_HERE)
def test_every_kind_gets_the_same_events_files_and_throughput(ws: Any, kind_data: dict, kind: str) -> None:
    """lr 0: the selection metric never improves after the first evaluation, so patience 1 stops at the
    second, with the same early_stop event in every kind."""
    spec = KINDS[kind]
    rt = run_kind(ws, kind, f"{kind}-0001", dict(kind_data[kind], lr=0.0, patience=1, epochs=4))
    rows = list(iter_rows(rt.paths.metrics))
    train = [r for r in rows if r.get("split") == "train"]
    assert train and all(spec.throughput in r and r[spec.throughput] > 0 for r in train)
    assert all({"loss", "lr", "grad_norm"} <= set(r) for r in train)
    ends = _events(rt, "epoch_end")
    assert [e["epoch"] for e in ends] == [1, 2] and [e["best"] for e in ends] == [True, False]
    (stop,) = _events(rt, "early_stop")
    assert set(stop) >= {"epoch", "step", "patience", "best", "best_step"}
    assert (stop["epoch"], stop["patience"], stop["best_step"]) == (2, 1, ends[0]["step"])
    for name in ("epoch_0.pt", "latest.pt", "best_model.pt", "training_curves.png"):
        assert (rt.paths.ckpt_dir / name).is_file(), name
    latest, best = load_checkpoint(rt.paths.latest, kind=kind), load_checkpoint(rt.paths.best, kind=kind)
    assert latest["optimizer"] is not None and latest["rng"] is not None and best["optimizer"] is None
    assert latest["extra"]["loop"]["bad_evals"] == 1
    progress = rt.record.progress
    assert progress[spec.throughput] > 0 and progress["step"] == ends[-1]["step"]


@pytest.mark.parametrize("kind", KINDS_HERE)
def test_every_kind_stops_and_resumes_bit_identically(ws: Any, kind_data: dict, kind: str) -> None:
    values = kind_data[kind]
    ref = run_kind(ws, kind, f"{kind}-0001", values)
    steps = max(r["step"] for r in iter_rows(ref.paths.metrics) if r.get("split") == "train")
    run_kind(ws, kind, f"{kind}-0002", values, stop_at_step=2)  # mid-epoch
    assert load_checkpoint(ws.run(f"{kind}-0002").latest)["step"] == 2
    run_kind(ws, kind, f"{kind}-0002", values, resuming=True, stop_at_step=steps // 2)  # the end of epoch 1
    b = run_kind(ws, kind, f"{kind}-0002", values, resuming=True)

    def comparable(rt: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for r in iter_rows(rt.paths.metrics):
            if r.get("event") == "resumed":
                del out[len([x for x in out if x["step"] <= r["step"]]):]
            elif "split" in r:
                out.append(untimed(r))
        return out

    assert comparable(b) == comparable(ref)
    sa, sb = (load_checkpoint(rt.paths.latest)["model"] for rt in (ref, b))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_loop_asks_for_a_stop_once_per_step_and_saves_that_step(ws: Any) -> None:
    """A stop request landing between two asks in one step used to end training without latest.pt."""
    rt = make_runtime(ws, "demo-0001", {"epochs": 1, "steps_per_epoch": 10, "batch_size": 4}, kind="demo")
    asks: list[int] = []
    rt.should_stop = lambda: asks.append(1) or len(asks) >= 2  # type: ignore[method-assign]
    from jobs.demo import train

    train(rt, rt.config)
    ck = load_checkpoint(rt.paths.latest)
    assert ck["step"] == 2 == len(asks), "asked once per step; the step it stopped at is in latest.pt"


def test_shard_gives_each_rank_a_disjoint_share_of_every_batch() -> None:
    from jobs.loop import shard

    idx = torch.arange(37)
    parts = [shard(idx, r, 3) for r in range(3)]
    assert sorted(torch.cat(parts).tolist()) == list(range(37))
    assert all(not set(a.tolist()) & set(b.tolist()) for i, a in enumerate(parts) for b in parts[i + 1:])
    assert torch.equal(shard(idx[:2], 1, 3), idx[:2])  # a batch smaller than the world goes whole to everyone
    assert torch.equal(shard(idx, 0, 1), idx)


def test_throughput_is_the_recent_rate() -> None:
    from jobs.loop import Throughput

    tp = Throughput(window=2)
    assert tp.add(100, 1.0) == pytest.approx(100)
    assert tp.add(300, 1.0) == pytest.approx(200)
    assert tp.add(300, 0.5) == pytest.approx(400)  # the first step left the window


def test_accumulation_equals_one_large_batch(ws: Any) -> None:
    """grad_accum 4 x batch 8 takes the same optimizer steps as batch 32 (the demo has no dropout/batch norm;
    its per-batch noise draws the same numbers either way)."""
    base = {"epochs": 1, "steps_per_epoch": 8, "batch_size": 8}
    big = run_kind(ws, "demo", "demo-0001", dict(base, batch_size=32, steps_per_epoch=2))
    acc = run_kind(ws, "demo", "demo-0002", dict(base, grad_accum=4))
    wa, wb = (load_checkpoint(rt.paths.latest)["model"] for rt in (big, acc))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert [r["step"] for r in iter_rows(acc.paths.metrics) if r.get("split") == "train"] == [1, 2]


def _all_finite(path: Path) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in load_checkpoint(path)["model"].values())


def test_a_diverging_run_fails_with_a_fix_and_never_saves_non_finite_weights(ws: Any) -> None:
    from jobs.loop import Diverged

    with pytest.raises(Diverged, match=r"training diverged: non-finite .* at step \d+.*Try: lower --lr"):
        run_kind(ws, "demo", "demo-0001", {"epochs": 3, "steps_per_epoch": 50, "lr": 10.0, "checkpoint_every": 1})
    run = ws.run("demo-0001")
    (div,) = [r for r in iter_rows(run.metrics) if r.get("event") == "diverged"]
    assert div["lr"] == 10.0 and div["step"] <= 20
    saved = list(run.ckpt_dir.glob("*.pt"))
    assert saved and all(_all_finite(p) for p in saved)
    assert load_checkpoint(run.latest)["step"] == div["step"] - 1  # the last finite step, nothing after


def test_skip_batch_skips_a_bounded_number_of_bad_batches(ws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from jobs.demo import DemoTask
    from jobs.loop import MAX_SKIPPED, Diverged

    real = DemoTask.loss
    bad = {3, 4}

    def poisoned(self: DemoTask, model: Any, idx: Any, step: int) -> Any:
        return real(self, model, idx, step) * (math.nan if step in bad else 1.0)

    monkeypatch.setattr(DemoTask, "loss", poisoned)
    rt = run_kind(ws, "demo", "demo-0001", {"epochs": 1, "steps_per_epoch": 12, "on_nan": "skip-batch"})
    skipped = _events(rt, "skipped_batch")
    assert [e["step"] for e in skipped] == [3, 4] and [e["in_a_row"] for e in skipped] == [1, 2]
    assert _all_finite(rt.paths.latest) and load_checkpoint(rt.paths.latest)["step"] == 12
    bad.update(range(6, 6 + MAX_SKIPPED + 1))
    with pytest.raises(Diverged):
        run_kind(ws, "demo", "demo-0002", {"epochs": 1, "steps_per_epoch": 40, "on_nan": "skip-batch"})


def test_lm_test_row_scores_the_best_weights(ws: Any, kind_data: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The final test row is best_model.pt's score, not the last weights'. Each evaluation is made to look worse
    than the one before, so the best checkpoint is the first epoch's and the last weights differ from it."""
    import contextlib

    from core.llm.data import load_records, tokenize
    from core.llm.generate import load_explainer
    from core.llm.training import evaluate_split
    from jobs.lm import LMTask

    real, calls = LMTask.evaluate, []

    def worse_later(self: LMTask, autocast: Any) -> Any:
        ev = real(self, autocast)
        calls.append(1)
        ev.splits["val"]["loss"] += len(calls)
        return ev

    monkeypatch.setattr(LMTask, "evaluate", worse_later)
    cfg = dict(kind_data["llm"], epochs=2)
    rt = run_kind(ws, "llm", "llm-0001", cfg)
    (test,) = _events(rt, "test")
    assert test["weights"] == "best_model.pt"
    assert load_checkpoint(rt.paths.best)["step"] < load_checkpoint(rt.paths.latest)["step"]
    records = load_records("", cfg["n_pairs"], 0, ("test",))["test"][:cfg["eval_max"]]

    def score(path: Path) -> float:
        ex = load_explainer(path)
        split = tokenize(ex.tokenizer, records, cfg["block_size"])
        return evaluate_split(ex.logits, split, cfg["batch_size"], ex.device, contextlib.nullcontext)["loss"]

    assert test["test_loss"] == pytest.approx(score(rt.paths.best), rel=1e-6)
    assert score(rt.paths.latest) != pytest.approx(test["test_loss"], rel=1e-6)


def _rank_main(rank: int, world: int, port: int, run_dir: str, out: str) -> None:
    """One DDP rank (spawned): the demo task, recording the rows each of its steps trained on."""
    import json
    import os

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    import torch.distributed as dist

    from core.paths import RunPaths
    from core.runrec import read_record
    from jobs.config import build_config
    from jobs.demo import DemoConfig, DemoTask
    from jobs.loop import fit
    from jobs.runtime import JobRuntime

    seen: list[list[int]] = []

    class Recording(DemoTask):
        def loss(self, model: Any, idx: Any, step: int) -> Any:
            seen.append(idx.tolist())
            return super().loss(model, idx, step)

    paths = RunPaths.from_log_dir(run_dir)
    rec = read_record(paths.job_json)
    rt = JobRuntime(paths, rec, build_config(DemoConfig, rec.config))
    rt.setup_distributed()
    try:
        fit(rt, Recording(rt.config))
    finally:
        rt.metrics.close()
        dist.destroy_process_group()
    Path(out, f"rank{rank}.json").write_text(json.dumps(seen))


def test_two_gloo_ranks_train_on_disjoint_halves_of_every_batch(ws: Any, tmp_path: Path) -> None:
    import json
    import socket

    import torch.multiprocessing as mp

    from core.runrec import JobRecord, write_record

    cfg = {"epochs": 2, "steps_per_epoch": 6, "batch_size": 4}
    run = ws.run("demo-0001").make()
    write_record(run.job_json, JobRecord(id="demo-0001", kind="demo", config=cfg, nproc=2))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank_main, args=(2, port, str(run.log_dir), str(tmp_path)), nprocs=2, start_method="spawn")
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == 2 * 3  # 24 samples per epoch, 4 per rank per step: 3 steps, not 6
    for a, b in zip(*seen):
        assert len(a) == len(b) == 4 and not set(a) & set(b)
    for epoch in range(2):
        rows = [i for r in range(2) for step in seen[r][3 * epoch:3 * epoch + 3] for i in step]
        assert sorted(rows) == list(range(24)), "together the ranks see every sample once an epoch"
    steps = [r["step"] for r in iter_rows(run.metrics) if r.get("split") == "train"]
    assert steps == list(range(1, 7)), "rank 0 alone writes the metrics"


def test_cnn_on_two_cpu_ranks_takes_half_the_steps_per_epoch(ws: Any, kind_data: dict) -> None:
    """``train cnn --gpus 2 --gpu cpu``: torchrun, two gloo ranks, each a batch of its own per step."""
    from jobs import supervisor as sv
    from tests.jobhelpers import wait_for

    values = dict(kind_data["cnn"], epochs=1)  # 96 train images (val 20 %), batch 16 per rank
    rec, _ = sv.start_job(ws, "cnn", values, gpu="cpu", gpus=2)
    wait_for(lambda: sv.job_status(ws, rec.id).state in ("finished", "failed"), 240, 0.2, "cnn on two ranks")
    st = sv.job_status(ws, rec.id)
    assert st.state == "finished", (st.reason, ws.run(rec.id).stdout.read_text()[-2000:])
    train = [r for r in iter_rows(ws.run(rec.id).metrics) if r.get("split") == "train"]
    assert [r["step"] for r in train] == [1, 2, 3]  # 96 / (2 x 16); one process would take 6
    assert train[-1]["img_s"] > 0 and (ws.run(rec.id).ckpt_dir / "misclassified.png").is_file()


def test_gpus_above_one_is_refused_for_a_kind_without_ddp(ws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from core.errors import NcanvasError
    from jobs import kinds
    from jobs import supervisor as sv

    monkeypatch.setitem(kinds.KINDS, "demo", dataclasses.replace(kinds.KINDS["demo"], ddp=False))
    with pytest.raises(NcanvasError, match="demo does not train data-parallel; --gpus must be 1"):
        sv.start_job(ws, "demo", {}, gpu="cpu", gpus=2)
    assert not list(ws.logs.iterdir())


@pytest.mark.parametrize("kind", KINDS_HERE)
def test_every_kind_survives_sigkills_at_random_moments(ws: Any, kind_data: dict, kind: str) -> None:
    """Real processes: SIGKILL the job's group at random moments (checkpoints are written every step, so some kills
    land inside a write); each time the last latest.pt loads and a resume continues the same series."""
    import os
    import random
    import signal

    from core.runrec import read_record
    from jobs import supervisor as sv
    from jobs.locks import is_locked
    from tests.jobhelpers import effective_rows, last_step, wait_for

    extra = {"artcnn": {"backbone": "mobilenet_v3_small", "checkpoint_every": 2}}.get(kind, {"checkpoint_every": 1})
    rec, _ = sv.start_job(ws, kind, dict(kind_data[kind], epochs=10_000, **extra))
    run, rng, prev_step, prev_pid = ws.run(rec.id), random.Random(kind), 0, None
    for _ in range(3):
        wait_for(lambda: read_record(run.job_json).pid not in (None, prev_pid) and run.latest.is_file()
                 and last_step(run.job_json) > prev_step + 2, 120, what=f"{kind} steps")
        time.sleep(rng.uniform(0.0, 0.3))
        job = read_record(run.job_json)
        prev_pid = job.pid
        os.killpg(job.pgid, signal.SIGKILL)
        wait_for(lambda: not is_locked(run.lock), what="death")
        assert sv.job_status(ws, rec.id).state == "failed"
        ck = load_checkpoint(run.latest, kind=kind)
        assert ck["step"] >= prev_step
        prev_step = ck["step"]
        sv.resume(ws, rec.id)
    wait_for(lambda: last_step(run.job_json) > prev_step, 120, what="progress after the last resume")
    sv.kill(ws, rec.id, grace=2)
    steps = [r["step"] for r in effective_rows(run.metrics) if r.get("split") == "train"]
    assert steps == list(range(1, len(steps) + 1))
