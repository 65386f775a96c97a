"""What a Slurm job's state is, from evidence: the run record, what Slurm says, the stop request and the clock.

Pure rules (evidence in, state + liveness + reason out), so every case is a unit test. Why a job ended badly is
decided by :mod:`jobs.triage`, as for a local job, from Slurm's state (TIMEOUT, PREEMPTED, OUT_OF_MEMORY,
NODE_FAIL, CANCELLED...) and the log's last lines. Liveness comes from Slurm
(squeue) and the job's heartbeat (``progress.heartbeat`` in ``job.json``), never from a lock on a shared
filesystem. Slurm keeps a finished job for ``MinJobAge`` seconds only (and ``sacct`` needs accounting), so an
ending that only Slurm knew (a time limit, a node failure, a cancel) is returned as ``settle``: the caller writes
it into ``job.json`` once, while Slurm still remembers it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.runrec import (
    FAILED,
    FINISHED,
    KILLED,
    LIVE_STATES,
    PAUSED,
    QUEUED,
    RUNNING,
    STOPPED,
    STOPPING,
    TERMINAL_STATES,
    JobRecord,
    JobState,
)

HEARTBEAT_STALE_S = 300.0  # a running job silent this long is flagged (hung, or its node lost the filesystem)

PENDING = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING"})
ACTIVE = frozenset({"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING", "STOPPED", "SUSPENDED"})
# Slurm's own endings that are failures whatever the trainer wrote last (jobs.triage says why and what to do)
SLURM_FAILURES = frozenset({"TIMEOUT", "PREEMPTED", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"})
FINAL = frozenset({*SLURM_FAILURES, "COMPLETED", "FAILED", "CANCELLED", "SPECIAL_EXIT"})
WHY_PENDING = {
    "Priority": "jobs of higher priority are ahead",
    "Resources": "waiting for resources to become free",
    "Dependency": "waiting for its --after job to finish",
    "DependencyNeverSatisfied": "its --after job ended without finishing, so this one will never start: kill it, "
                                "or resume that job",
    "BeginTime": "not eligible yet (a requeued job waits a little before it may start again)",
    "JobHeldUser": "held (scontrol release lets it go)",
    "JobHeldAdmin": "held by an administrator",
    "PartitionTimeLimit": "its --time is above the partition's limit: it will not start",
    "ReqNodeNotAvail": "a node it needs is unavailable",
    "QOSMaxJobsPerUserLimit": "you already run as many jobs as your QOS allows",
    "AssocGrpGRES": "your account's GPU limit is reached",
}


@dataclass(frozen=True)
class Seen:
    """One line of ``squeue``: the Slurm job as the controller sees it now."""

    job_id: str
    state: str  # RUNNING, PENDING, COMPLETED ... (squeue %T)
    reason: str  # Priority, Resources, None ... (squeue %r)
    nodes: str  # the allocated node list ("" while pending)
    start: float | None  # this run's start (epoch seconds), None while pending

    @property
    def active(self) -> bool:
        return self.state in ACTIVE or self.state in PENDING


NO_ANSWER = "no answer"  # squeue failed: Slurm is down or unreachable; nothing is known about any job


@dataclass
class Verdict:
    """The effective state of a Slurm job. ``cause``: why it ended badly (:meth:`jobs.triage.Cause.to_json`).
    ``settle``: (state, error, cause) to write into job.json, an ending known only to Slurm (or to its absence)
    that the record does not hold yet."""

    state: JobState
    alive: bool
    reason: str | None = None
    settle: tuple[JobState, str | None, dict[str, Any] | None] | None = None
    cause: dict[str, Any] | None = None


def decide(rec: JobRecord, seen: Seen | str | None, *, stop_requested: bool = False, now: float | None = None,
           log_tail: str = "", stale_s: float = HEARTBEAT_STALE_S, latest_kept: bool = False) -> Verdict:
    """The state of Slurm job ``rec`` from ``seen``: a :class:`Seen`, ``None`` when Slurm does not know the job
    (never submitted, or forgotten after ``MinJobAge``), or :data:`NO_ANSWER`."""
    now = time.time() if now is None else now
    jid = rec.slurm.get("job_id")
    if not jid:
        if rec.state in LIVE_STATES:  # between writing the record and sbatch's answer: starting, not ended
            return Verdict(QUEUED, False, "being submitted to Slurm")
        return Verdict(rec.state, False, rec.error)
    if seen == NO_ANSWER:
        return _no_answer(rec, now, stale_s)
    if seen is None:
        return _forgotten(rec, str(jid), log_tail, latest_kept)
    assert isinstance(seen, Seen)
    if seen.state in PENDING:
        return Verdict(QUEUED, True, _pending_reason(rec, seen))
    if seen.state in ACTIVE:
        return _active(rec, seen, stop_requested, now, stale_s)
    return _ended(rec, seen, stop_requested, log_tail, latest_kept)


def _pending_reason(rec: JobRecord, seen: Seen) -> str:
    why = WHY_PENDING.get(seen.reason, "")
    text = f"Slurm: {seen.reason}" + (f" ({why})" if why else "")
    if seen.reason in ("None", ""):
        text = "Slurm: pending (not looked at by the scheduler yet)"
    if seen.state == "CONFIGURING":
        text = f"Slurm: configuring its nodes ({seen.nodes})"
    queued = rec.progress.get("queued")
    if rec.state == QUEUED and isinstance(queued, str) and "requeue" in queued:
        text += f"; {queued}"
    return text


def _active(rec: JobRecord, seen: Seen, stop_requested: bool, now: float, stale_s: float) -> Verdict:
    where = f"on {seen.nodes}" if seen.nodes else ""
    if seen.state in ("STOPPED", "SUSPENDED"):
        return Verdict(PAUSED, True, f"paused in Slurm {where}; its allocation stays held".replace("  ", " "))
    this_run = rec.ended is None or seen.start is None or rec.ended >= seen.start - 1.0
    if rec.state in TERMINAL_STATES and this_run:  # wrote its final state; Slurm is ending the job
        return Verdict(rec.state, True, rec.error)
    queued, beat = rec.progress.get("queued"), rec.progress.get("heartbeat")
    if (rec.state == QUEUED and isinstance(queued, str) and "requeue" in queued and isinstance(beat, (int, float))
            and seen.start is not None and beat >= seen.start - 1.0):  # this run checkpointed and asks to go again
        return Verdict(QUEUED, True, f"{queued}; Slurm is requeueing it")
    if rec.state in TERMINAL_STATES or rec.state == QUEUED:  # a (re)started run whose trainer is not up yet
        return Verdict(STOPPING if stop_requested else QUEUED, True, f"starting {where}".strip())
    state = STOPPING if stop_requested and rec.state in (RUNNING, PAUSED) else rec.state
    if state == RUNNING and isinstance(beat, (int, float)) and now - beat > stale_s:
        return Verdict(state, True, f"no heartbeat for {now - beat:.0f}s: the process may hang, or its node may "
                                    "have lost the shared filesystem")
    return Verdict(state, True, None)


def _ended(rec: JobRecord, seen: Seen, stop_requested: bool, log_tail: str, latest_kept: bool = False) -> Verdict:
    s = seen.state
    if rec.state == FINISHED:  # the trainer finished; whatever Slurm did to the batch script afterwards
        return Verdict(FINISHED, False, None)
    if s in SLURM_FAILURES:
        if rec.state == FAILED and isinstance(rec.cause, dict) and rec.cause.get("code", "").startswith("slurm_"):
            return Verdict(FAILED, False, rec.error, cause=rec.cause)  # settled already
        return _failure(rec, FAILED, seen, stop_requested, log_tail, latest_kept=latest_kept)
    if s == "CANCELLED":
        if rec.state == KILLED or (rec.state == STOPPED and stop_requested):
            return Verdict(rec.state, False, rec.error, cause=rec.cause)
        return _failure(rec, KILLED, seen, stop_requested, log_tail, latest_kept=latest_kept)
    if rec.state in TERMINAL_STATES:  # COMPLETED / FAILED with the trainer's own final state
        return Verdict(rec.state, False, rec.error, cause=rec.cause)
    queued = rec.progress.get("queued")
    if rec.state == QUEUED and isinstance(queued, str) and "requeue" in queued:
        tail = "it saved latest.pt to run again (a requeue), but Slurm ended it instead"
        return _failure(rec, FAILED, seen, stop_requested, log_tail, tail, latest_kept=latest_kept)
    return _failure(rec, FAILED, seen, stop_requested, log_tail, latest_kept=latest_kept)


def _forgotten(rec: JobRecord, jid: str, log_tail: str, latest_kept: bool = False) -> Verdict:
    if rec.state in TERMINAL_STATES:
        return Verdict(rec.state, False, rec.error, cause=rec.cause)
    gone = Seen(jid, "UNKNOWN", "", "", None)
    head = f"Slurm no longer knows job {jid} (it ended more than MinJobAge ago)"
    return _failure(rec, FAILED, gone, False, log_tail, head=head, latest_kept=latest_kept)


def _failure(rec: JobRecord, state: JobState, seen: Seen, stop_requested: bool, log_tail: str, summary: str = "",
             head: str = "", latest_kept: bool = False) -> Verdict:
    """An ending the trainer did not write: its cause from :mod:`jobs.triage`, to be settled into job.json."""
    from jobs.triage import Evidence, diagnose

    ev = Evidence(job_id=rec.id, kind=rec.kind, config=rec.config, vanished=True, stop_requested=stop_requested,
                  rss_mb=rec.progress.get("rss_mb"), last_heartbeat=rec.progress.get("heartbeat"),
                  log_tail=tuple(ln for ln in log_tail.split(" | ") if ln), latest_step=rec.progress.get("saved_step"),
                  latest_kept=latest_kept, slurm_state=seen.state, slurm_reason=seen.reason if seen.reason not in ("", "None") else None)
    cause = diagnose(ev).to_json()
    why = f"{head or 'Slurm: ' + seen.state}: {summary + '; ' if summary else ''}{cause['summary']}"
    why += f"; last log: {log_tail}" if log_tail else ""
    return Verdict(state, False, why, settle=(state, why, cause), cause=cause)


def _no_answer(rec: JobRecord, now: float, stale_s: float) -> Verdict:
    beat = rec.progress.get("heartbeat")
    if rec.state in LIVE_STATES and isinstance(beat, (int, float)) and now - beat < stale_s:
        return Verdict(rec.state, True, f"Slurm does not answer; alive by its heartbeat {now - beat:.0f}s ago")
    return Verdict(rec.state, rec.state in LIVE_STATES, "Slurm does not answer: the state is the last one recorded"
                   if rec.state in LIVE_STATES else rec.error)


def summary(seen: Seen | str | None) -> dict[str, Any] | None:
    """What ``jobs ls``/``show`` and the dashboard show of the live Slurm job."""
    if not isinstance(seen, Seen):
        return None
    return {"job_id": seen.job_id, "state": seen.state, "reason": seen.reason, "nodes": seen.nodes}
