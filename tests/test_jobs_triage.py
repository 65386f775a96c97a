"""Failure causes from evidence (jobs/triage.py): each rule on recorded evidence, where no CPU can produce it for
real (CUDA OOM, NCCL, a driver mismatch, Slurm), and the machine facts the supervisor reads."""

from __future__ import annotations

import pytest

from jobs import evidence
from jobs.triage import Evidence, Frame, diagnose, where

# torch 2.x's message for a CUDA OOM, as a real H100 run printed it
CUDA_OOM = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.11 GiB of which "
            "1.06 GiB is free. Including non-PyTorch memory, this process has 78.04 GiB memory in use. Of the "
            "allocated memory 76.51 GiB is allocated by PyTorch, and 1.02 GiB is reserved by PyTorch but unallocated.")
NCCL = ("NCCL error in: /opt/pytorch/torch/csrc/distributed/c10d/NCCLUtils.hpp:317, unhandled system error "
        "(run with NCCL_DEBUG=INFO for details), NCCL version 2.21.5")
FRAMES = (Frame("/usr/lib/python3.11/site-packages/torch/nn/modules/module.py", 1751, "_call_impl"),
          Frame("jobs/cnn.py", 120, "loss", True), Frame("/usr/lib/python3/torch/functional.py", 9, "conv"))


def test_cuda_oom_names_the_batch_and_memory_and_keeps_the_effective_batch() -> None:
    ev = Evidence(job_id="llm-0003", kind="llm", config={"batch_size": 64, "grad_accum": 2, "amp": True},
                  exc_type="OutOfMemoryError", exc_bases=("RuntimeError",), message=CUDA_OOM, frames=FRAMES,
                  gpu_mem={"peak_gib": 79.1, "total_gib": 80.0})
    c = diagnose(ev)
    assert c.code == "cuda_oom" and c.reason == "GPU out of memory"
    assert c.summary == "out of GPU memory at batch 64 (79.1 of 80.0 GiB)"
    assert c.fix.startswith("--batch-size 32 --grad-accum 4 (the same effective batch of 128)")
    assert c.where == "jobs/cnn.py:120 in loss"
    no_amp = diagnose(Evidence(config={"batch_size": 8, "amp": False}, exc_type="OutOfMemoryError", message=CUDA_OOM))
    assert "79.1 GiB" in no_amp.summary and no_amp.fix.endswith("or mixed precision with --amp")


def test_divergence_takes_the_loops_own_fix() -> None:
    msg = ("training diverged: non-finite loss at step 7 (lr 10); latest.pt from step 5 is kept. "
           "Try: lower --lr (now 10; try 1); clip gradients with --grad-clip 1.0")
    c = diagnose(Evidence(exc_type="Diverged", exc_bases=("NcanvasError",), message=msg))
    assert c.code == "diverged" and "non-finite loss at step 7" in c.summary and "Try" not in c.summary
    assert c.fix == "lower --lr (now 10; try 1); clip gradients with --grad-clip 1.0"


def test_host_memory_raised_or_killed_by_the_oom_killer() -> None:
    raised = diagnose(Evidence(kind="artcnn", config={"batch_size": 64}, exc_type="RuntimeError",
                               message="[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't "
                                       "allocate memory: you tried to allocate 3221225472 bytes."))
    assert raised.code == "host_oom" and "--batch-size 32" in raised.fix and "--stream" in raised.fix
    killed = diagnose(Evidence(vanished=True, oom_kills=1, rss_mb=23000, mem_limit_mb=24000,
                               config={"batch_size": 16}))
    assert killed.code == "host_oom" and killed.summary.startswith("killed by the kernel's OOM killer")
    assert "last heartbeat: 23000 MiB resident of a 24000 MiB limit" in killed.evidence
    stopping = diagnose(Evidence(vanished=True, oom_kills=1, stop_requested=True))
    assert stopping.code == "killed_while_stopping"


def test_vanished_processes_segfault_reboot_and_outside_kills() -> None:
    seg = diagnose(Evidence(job_id="cnn-0001", vanished=True, latest_step=40,
                            log_tail=("step 41", "Fatal Python error: Segmentation fault", "")))
    assert seg.code == "segfault" and seg.reason == "crashed (segmentation fault)"
    assert "latest.pt from step 40 is kept" in seg.summary and seg.fix.startswith("ncanvas jobs resume cnn-0001")
    boot = diagnose(Evidence(vanished=True, rebooted_at=2000.0, last_heartbeat=1000.0))
    assert boot.code == "reboot"
    kill = diagnose(Evidence(vanished=True, rss_mb=512.0))
    assert kill.code == "killed" and "from outside ncanvas" in kill.summary


def test_disk_full_says_where_and_what_is_kept() -> None:
    c = diagnose(Evidence(job_id="cnn-0002", exc_type="OSError", message="[Errno 28] No space left on device",
                          disk_free={"/ws/checkpoints/cnn-0002": 4096}, latest_step=17))
    assert c.code == "disk_full"
    assert c.summary == "disk full: 4.0 KiB free on /ws/checkpoints/cnn-0002; latest.pt from step 17 is kept"
    assert c.fix.endswith("then: ncanvas jobs resume cnn-0002")
    # torch's own words for a write cut short by a full disk
    torn = diagnose(Evidence(exc_type="RuntimeError", message="[enforce fail at inline_container.cc:672] . "
                             "unexpected pos 49984 vs 49872", disk_free={"/ws": 0}))
    assert torn.code == "disk_full"


def test_data_missing_offline_environment_and_packages() -> None:
    data = diagnose(Evidence(exc_type="DataNotFound", exc_bases=("NcanvasError",),
                             message="cifar10 train data not found: put data_batch_1, ... in /d/cifar-10-batches-py "
                                     "(downloads disabled (NCANVAS_OFFLINE=1)); or pass --data-dir"))
    assert data.code == "data_missing" and data.reason == "data missing (offline)"
    assert data.fix.startswith("Put data_batch_1")
    cuda = diagnose(Evidence(exc_type="RuntimeError", message="Found no NVIDIA driver on your system."))
    assert cuda.code == "cuda_unavailable" and "--gpu cpu" in cuda.fix
    old = diagnose(Evidence(exc_type="RuntimeError", message="The NVIDIA driver on your system is too old "
                                                             "(found version 11040)."))
    assert old.code == "driver_mismatch"
    nccl = diagnose(Evidence(exc_type="DistBackendError", exc_bases=("RuntimeError",), message=NCCL))
    assert nccl.code == "nccl" and "NCCL_DEBUG=INFO" in nccl.fix
    pkg = diagnose(Evidence(exc_type="ModuleNotFoundError", message="No module named 'safetensors.torch'"))
    assert pkg.code == "missing_package" and pkg.fix.startswith("pip install safetensors")


def test_bad_values_and_slurm_causes() -> None:
    bad = diagnose(Evidence(kind="artcnn", exc_type="NcanvasError",
                            message="--backbone 'resnet19': unknown backbone; did you mean resnet18?"))
    assert bad.code == "bad_value" and bad.reason == "bad value for --backbone"
    # an option named in passing is not a bad value of that option; the message is still the summary
    dep = diagnose(Evidence(job_id="b", exc_type="NcanvasError",
                            message="dependency a ended failed; not starting (started with --after a)"))
    assert dep.code == "job_error" and dep.summary.startswith("dependency a ended failed")
    assert dep.fix == "correct what the message says, then: ncanvas jobs resume b"
    disk = diagnose(Evidence(exc_type="RuntimeError", message="[enforce fail at inline_container.cc:672] unexpected pos",
                             line="disk full: 12 bytes free on /x; latest.pt from step 5 is kept",
                             disk_free={"/x": 12}))
    assert disk.code == "disk_full" and disk.summary == "disk full: 12 bytes free on /x; latest.pt from step 5 is kept"
    for state, code in (("TIMEOUT", "slurm_timeout"), ("PREEMPTED", "slurm_preempted"),
                        ("OUT_OF_MEMORY", "slurm_oom"), ("NODE_FAIL", "slurm_node_fail")):
        c = diagnose(Evidence(vanished=True, slurm_state=state, latest_step=9))
        assert c.code == code and "latest.pt from step 9 is kept" in c.summary


def test_anything_else_is_one_line_with_the_place_in_our_code() -> None:
    c = diagnose(Evidence(job_id="demo-0001", exc_type="KeyError", message="'acc'\nmore", frames=FRAMES))
    assert c.code == "error" and c.summary == "KeyError: 'acc'" and c.where == "jobs/cnn.py:120 in loss"
    assert c.fix == "see the traceback in the log: ncanvas logs demo-0001 (raised at jobs/cnn.py:120 in loss)"
    assert where((Frame("/x/y.py", 3, "f"),)) == "/x/y.py:3 in f" and where(()) is None
    assert diagnose(Evidence()).summary == "the job failed without an error message"


def test_frames_are_marked_inside_our_code() -> None:
    import sys

    try:
        evidence.memory_limit_mb(None) / 0  # type: ignore[operator]
    except ZeroDivisionError:
        tb = sys.exc_info()[2]
    from jobs.evidence import code_root
    from jobs.triage import frames_from_traceback

    frames = frames_from_traceback(tb, code_root())
    assert frames[-1].file == "tests/test_jobs_triage.py" and not frames[-1].ours


def test_machine_facts_are_read_or_none() -> None:
    cg = evidence.memory_cgroup()
    assert evidence.oom_kills(cg) is not None  # /proc/vmstat at least
    assert (evidence.memory_limit_mb(cg) or 0) > 0 and (evidence.boot_time() or 0) > 0
    assert (evidence.rss_mb() or 0) > 1
    assert evidence.memory_cgroup(pid=999_999_999) is None


@pytest.mark.parametrize("before,now,expected", [(3, 4, 1), (None, 4, 0), (5, 5, 0)])
def test_vanished_evidence_counts_oom_kills_since_the_start(monkeypatch, before, now, expected) -> None:
    monkeypatch.setattr(evidence, "oom_kills", lambda cg: now)
    ev = evidence.from_vanished(job_id="x", kind="demo", config={}, stop_requested=False, log_tail=[],
                                progress={"cgroup": "/sys/fs/cgroup", "oom_kills0": before, "heartbeat": 1.0})
    assert ev.oom_kills == expected and ev.vanished and ev.rebooted_at is not None  # booted after t=1.0
