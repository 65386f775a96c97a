"""The workspace and the run-directory layout (DESIGN.md). No torch.

Workspace root: ``--home`` > ``NCANVAS_HOME`` > nearest ancestor of the cwd holding ``ncanvas.toml`` >
the user data dir. Each job ``<id>`` owns ``logs/<id>/`` and ``checkpoints/<id>/``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import BadJobId

MARKER = "ncanvas.toml"
ENV_HOME = "NCANVAS_HOME"
MAX_ID_LEN = 64
JOB_ID_RE = re.compile(rf"^[a-z0-9][a-z0-9-]{{0,{MAX_ID_LEN - 1}}}$")


def validate_job_id(job_id: str) -> str:
    """Return ``job_id`` if it is ``[a-z0-9-]+`` of at most 64 characters (no path traversal), else raise
    :class:`BadJobId` saying which rule it breaks."""
    if isinstance(job_id, str) and JOB_ID_RE.match(job_id):
        return job_id
    if isinstance(job_id, str) and len(job_id) > MAX_ID_LEN and JOB_ID_RE.match(job_id[:MAX_ID_LEN]) and \
            re.fullmatch(r"[a-z0-9-]+", job_id):
        raise BadJobId(f"invalid job id {job_id[:20]}... ({len(job_id)} characters): at most {MAX_ID_LEN} "
                       "characters")
    raise BadJobId(f"invalid job id {job_id!r}: use lowercase letters, digits and '-' (at most {MAX_ID_LEN} "
                   "characters, e.g. cnn-0001)")


def find_marker(start: Path) -> Path | None:
    """The nearest ancestor of ``start`` (itself included) that holds ``ncanvas.toml``."""
    start = start.resolve()
    for d in (start, *start.parents):
        if (d / MARKER).is_file():
            return d
    return None


def resolve_home(home: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> Path:
    """Resolve the workspace root by the precedence in DESIGN.md."""
    if home:
        return Path(home).expanduser().resolve()
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser().resolve()
    marked = find_marker(cwd or Path.cwd())
    if marked is not None:
        return marked
    from platformdirs import user_data_dir

    return Path(user_data_dir("ncanvas", appauthor=False))


@dataclass(frozen=True)
class Workspace:
    """A workspace root with its ``logs/`` and ``checkpoints/`` folders."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None) -> Workspace:
        return cls(resolve_home(home))

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def run(self, job_id: str) -> RunPaths:
        validate_job_id(job_id)
        return RunPaths(job_id, self.logs / job_id, self.checkpoints / job_id)

    def job_ids(self) -> list[str]:
        """Ids of every run directory that has a ``job.json``, sorted."""
        if not self.logs.is_dir():
            return []
        ids = [p.name for p in self.logs.iterdir() if JOB_ID_RE.match(p.name) and (p / "job.json").is_file()]
        return sorted(ids)

    def ensure(self) -> Workspace:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        return self


@dataclass(frozen=True)
class RunPaths:
    """Every path of one job's run directory."""

    job_id: str
    log_dir: Path
    ckpt_dir: Path

    @classmethod
    def from_log_dir(cls, log_dir: str | os.PathLike[str]) -> RunPaths:
        """Paths from ``logs/<id>`` (the ``--run-dir`` a job process gets)."""
        log_dir = Path(log_dir).resolve()
        job_id = validate_job_id(log_dir.name)
        return cls(job_id, log_dir, log_dir.parent.parent / "checkpoints" / job_id)

    @property
    def job_json(self) -> Path:
        return self.log_dir / "job.json"

    @property
    def metrics(self) -> Path:
        return self.log_dir / "metrics.jsonl"

    @property
    def stdout(self) -> Path:
        return self.log_dir / "stdout.log"

    @property
    def stop_request(self) -> Path:
        """Present while a stop was asked for (by ``ncanvas jobs stop`` before its SIGTERM, or by the job when a
        SIGTERM came from elsewhere): the one source of the derived state ``stopping``; ``resume`` removes it."""
        return self.log_dir / "stop_requested"

    @property
    def lock(self) -> Path:
        return self.log_dir / "run.lock"

    @property
    def latest(self) -> Path:
        return self.ckpt_dir / "latest.pt"

    @property
    def best(self) -> Path:
        return self.ckpt_dir / "best_model.pt"

    def epoch_ckpt(self, epoch: int) -> Path:
        return self.ckpt_dir / f"epoch_{epoch}.pt"

    @property
    def curves_png(self) -> Path:
        return self.ckpt_dir / "training_curves.png"

    def make(self) -> RunPaths:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        return self
