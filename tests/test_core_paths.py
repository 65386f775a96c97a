from pathlib import Path

import pytest

from core.errors import BadJobId
from core.paths import RunPaths, Workspace, resolve_home, validate_job_id
from core.runrec import JobRecord, list_jobs, load_job, next_job_id, read_record, write_record


@pytest.mark.parametrize("bad", ["../../etc", "..", "a/b", "Upper", "", "x" * 80, "-lead", "a b", "cnn_1", "/abs"])
def test_bad_job_ids_are_refused(bad: str, ws: Workspace) -> None:
    with pytest.raises(BadJobId, match="invalid job id"):
        validate_job_id(bad)
    with pytest.raises(BadJobId):
        ws.run(bad)


def test_good_job_ids() -> None:
    for good in ("cnn-0001", "llm-12", "a", "my-run-2"):
        assert validate_job_id(good) == good


def test_home_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marked = tmp_path / "proj"
    (marked / "sub" / "deeper").mkdir(parents=True)
    (marked / "ncanvas.toml").write_text("")
    monkeypatch.delenv("NCANVAS_HOME", raising=False)
    assert resolve_home(cwd=marked / "sub" / "deeper") == marked.resolve()
    monkeypatch.setenv("NCANVAS_HOME", str(tmp_path / "env"))
    assert resolve_home(cwd=marked / "sub") == (tmp_path / "env").resolve()
    assert resolve_home(home=tmp_path / "flag", cwd=marked) == (tmp_path / "flag").resolve()
    monkeypatch.delenv("NCANVAS_HOME")
    fallback = resolve_home(cwd=tmp_path / "elsewhere" if (tmp_path / "elsewhere").mkdir() is None else tmp_path)
    assert fallback.name == "ncanvas"  # platformdirs user data dir


def test_run_paths_from_log_dir(ws: Workspace) -> None:
    run = ws.run("cnn-0001").make()
    again = RunPaths.from_log_dir(run.log_dir)
    assert again == run
    assert run.latest == ws.checkpoints / "cnn-0001" / "latest.pt"


def test_run_records_round_trip_and_listing(ws: Workspace) -> None:
    assert next_job_id(ws, "cnn") == "cnn-0001"
    for i, kind in enumerate(["cnn", "llm", "cnn"]):
        jid = next_job_id(ws, kind)
        run = ws.run(jid).make()
        write_record(run.job_json, JobRecord(id=jid, kind=kind, config={"lr": 0.1 * i}, created=100.0 + i))
    assert [r.id for r in list_jobs(ws)] == ["cnn-0001", "llm-0001", "cnn-0002"]
    rec = load_job(ws, "llm-0001")
    assert rec.config == {"lr": 0.1} and rec.schema == 1
    (ws.run("cnn-0002").job_json).write_text("{torn")
    assert [r.id for r in list_jobs(ws)] == ["cnn-0001", "llm-0001"]  # unreadable records are skipped
    with pytest.raises(Exception, match="cannot read"):
        read_record(ws.run("cnn-0002").job_json)


@pytest.mark.parametrize(("patch", "msg"), [
    ({"schema": "x"}, "'schema' should be an integer"),
    ({"progress": None}, "'progress' should be an object"),
    ({"created": None}, "'created' should be a number"),
    ({"pid": "12"}, "'pid' should be an integer or null"),
    ({"resume": 1}, "'resume' should be true or false"),
    ({"nproc": True}, "'nproc' should be an integer"),
    ({"state": "exploded"}, "unknown state 'exploded'"),
    ({"id": "cnn-0009"}, "belongs to job 'cnn-0009', not 'cnn-0001'"),
])
def test_odd_records_are_one_clear_error_and_skipped_in_listings(ws: Workspace, patch: dict, msg: str) -> None:
    import json

    from core.errors import NcanvasError

    for jid in ("cnn-0001", "cnn-0002"):
        write_record(ws.run(jid).make().job_json, JobRecord(id=jid, kind="cnn", created=1.0))
    data = json.loads(ws.run("cnn-0001").job_json.read_text()) | patch
    ws.run("cnn-0001").job_json.write_text(json.dumps(data))
    with pytest.raises(NcanvasError, match=msg.replace("(", r"\(")):
        load_job(ws, "cnn-0001")
    assert [r.id for r in list_jobs(ws)] == ["cnn-0002"]  # one odd file never hides the other jobs
