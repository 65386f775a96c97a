"""Real training of both explainer kinds on CPU (tiny configs), stop/resume, and the CLI on the results."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from core.metrics import iter_rows
from jobs import supervisor as sv
from tests.jobhelpers import last_step, wait_for
from tui.cli import app

TINY_LLM = {"tokenizer": "bpe", "n_pairs": 300, "epochs": 2, "batch_size": 16, "eval_max": 48, "warmup_steps": 4,
            "lr": 3e-3, "n_layer": 2, "d_model": 64, "n_head": 4, "n_kv_head": 2, "d_ff": 128, "block_size": 320,
            "checkpoint_every": 0, "faith_eval": 8,  # a short faithfulness eval: the tests stay fast
            "cpu_threads": 1}  # one thread: beside the other test worker, two spinning threads made a 1 s eval 90 s


def run_to_end(ws, kind: str, config: dict, timeout: float = 240) -> str:
    rec, _ = sv.start_job(ws, kind, config)
    wait_for(lambda: sv.job_status(ws, rec.id).state in ("finished", "failed", "stopped"), timeout, 0.2,
             f"{kind} job")
    st = sv.job_status(ws, rec.id)
    assert st.state == "finished", (st.reason, ws.run(rec.id).stdout.read_text()[-2000:])
    return rec.id


def rows(ws, job_id: str, split: str) -> list[dict]:
    return [r for r in iter_rows(ws.run(job_id).metrics) if r.get("split") == split]


@pytest.fixture(scope="module")
def llm_run(tmp_path_factory):
    from core.paths import Workspace

    ws = Workspace(tmp_path_factory.mktemp("llmws")).ensure()
    return ws, run_to_end(ws, "llm", TINY_LLM)


@pytest.mark.slow
def test_llm_job_trains_and_lowers_the_loss(llm_run) -> None:
    ws, jid = llm_run
    train, val, test = rows(ws, jid, "train"), rows(ws, jid, "val"), rows(ws, jid, "test")
    assert len(val) == 2 and len(test) == 1
    assert train[-1]["loss"] < train[0]["loss"] - 1.5
    assert val[1]["loss"] < val[0]["loss"]
    assert all({"loss", "ppl", "lr", "tok_s"} <= set(r) for r in train)
    from core.llm.training import lr_lambda

    f = lr_lambda(len(train), TINY_LLM["warmup_steps"], 0.1)  # each row logs the rate its own step used
    assert [r["lr"] for r in train] == pytest.approx([TINY_LLM["lr"] * f(i) for i in range(len(train))])
    run = ws.run(jid)
    assert run.best.is_file() and run.latest.is_file() and run.curves_png.is_file()
    best = load_checkpoint(run.best, kind="llm")
    assert best["optimizer"] is None and "tokenizer_json" in best["extra"]  # small, self-contained for inference


@pytest.mark.slow
def test_llm_stop_and_resume_is_bit_identical(llm_run, ws) -> None:
    ref_ws, ref_id = llm_run
    job, _ = sv.start_job(ws, "llm", TINY_LLM)
    wait_for(lambda: last_step(ws.run(job.id).job_json) >= 5, 120, 0.05, "progress")
    sv.stop(ws, job.id, wait=True, timeout=60)
    assert sv.job_status(ws, job.id).state == "stopped"
    stopped_at = load_checkpoint(ws.run(job.id).latest)["step"]
    assert "resumed" in sv.resume(ws, job.id)
    wait_for(lambda: sv.job_status(ws, job.id).state in ("finished", "failed"), 240, 0.2, "resumed job")
    assert sv.job_status(ws, job.id).state == "finished"

    def clean(ws_, jid):  # tokens/s is wall-clock; everything else must be bit-identical
        return [{k: v for k, v in r.items() if k not in ("t", "tok_s")} for r in iter_rows(ws_.run(jid).metrics)
                if "event" not in r]

    ours, theirs = clean(ws, job.id), clean(ref_ws, ref_id)
    assert 0 < stopped_at < ours[-1]["step"]
    assert ours == theirs


@pytest.mark.slow
def test_gpt2_finetunes_from_a_local_folder(ws, tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from core.explain.dataset import generate
    from core.llm.tokenizer import train_bpe

    base = tmp_path / "tiny-gpt2"
    tok = train_bpe((r["prompt"] + "\n" + r["explanation"] for r in generate(300, 5)), 1000)
    GPT2LMHeadModel(GPT2Config(vocab_size=tok.vocab_size, n_positions=512, n_embd=64, n_layer=2, n_head=2,
                               bos_token_id=tok.eos_id, eos_token_id=tok.eos_id)).save_pretrained(base)
    PreTrainedTokenizerFast(tokenizer_object=tok.tok, eos_token="<|endoftext|>").save_pretrained(base)
    jid = run_to_end(ws, "gpt2", {"base": str(base), "n_pairs": 300, "epochs": 2, "batch_size": 16, "lr": 2e-3,
                                  "eval_max": 48, "warmup_steps": 4, "checkpoint_every": 0, "faith_eval": 8})
    train, val = rows(ws, jid, "train"), rows(ws, jid, "val")
    assert train[-1]["loss"] < train[0]["loss"] - 1.0 and val[1]["loss"] < val[0]["loss"]
    assert all(r["faith_n"] == 8 and 0.0 <= r["faith"] <= 1.0 for r in val)  # the faithfulness eval runs on GPT-2
    hf_dir = ws.run(jid).ckpt_dir / "best_model_hf"
    assert (hf_dir / "config.json").is_file() and (hf_dir / "tokenizer.json").is_file()
    from core.llm.generate import load_explainer
    from core.llm.sampling import SamplingSettings

    s = SamplingSettings(max_new_tokens=12, temperature=0)
    prompt = next(generate(1, 9))["prompt"]
    from_pt, from_hf = load_explainer(ws.run(jid).best), load_explainer(hf_dir)
    assert from_pt.kind == from_hf.kind == "gpt2"
    assert list(from_pt.generate_ids(prompt, s)) == list(from_hf.generate_ids(prompt, s))


@pytest.mark.slow
def test_cli_explain_compare_and_eval(llm_run, tmp_path: Path) -> None:
    ws, jid = llm_run
    ckpt = str(ws.run(jid).best)
    args = ["explain", "--checkpoint", ckpt, "--artist", "claude monet", "--style", "Impressionism", "--genre",
            "landscape", "--conf", "96.2,94.8,91.3", "--max-new-tokens", "20", "--seed", "0"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Artist: Claude Monet, confidence 96.2%" in res.output and len(res.output) > 200
    res = CliRunner().invoke(app, [*args, "--compare", str(ws.run(jid).ckpt_dir), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out["explanations"]) == 2 and out["explanations"][0]["text"] == out["explanations"][1]["text"]
    res = CliRunner().invoke(app, [*args, "--compare", ckpt])  # the live side-by-side view
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["--home", str(ws.root), "eval-llm", "--checkpoint", jid,  # a job id works too
                                   "--max-examples", "16", "--samples", "1", "--json"])
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    assert ev["val"]["ppl"] > 1 and 0 < ev["test"]["pairs"] <= 16 and len(ev["samples"]) == 1
    from core.explain.dataset import write_dataset

    write_dataset(tmp_path / "held-out", 400, seed=7)
    (tmp_path / "held-out" / "train.jsonl").unlink()  # scoring needs only val and test
    res = CliRunner().invoke(app, ["eval-llm", "--checkpoint", ckpt, "--data", str(tmp_path / "held-out"),
                                   "--max-examples", "8", "--samples", "0", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["val"]["pairs"] == 8


def test_cli_bad_inputs_are_one_line(tmp_path: Path) -> None:
    def err(*args: str) -> str:
        res = CliRunner().invoke(app, list(args))
        assert res.exit_code == 1, res.output
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("ncanvas: "), res.output
        return lines[0]

    missing = str(tmp_path / "nope.pt")
    assert "checkpoint not found" in err("explain", "--checkpoint", missing, "--artist", "Claude Monet",
                                         "--style", "Impressionism", "--genre", "Landscape")
    other = tmp_path / "demo.pt"
    save_checkpoint(make_checkpoint(kind="artcnn", arch="x", config={}, model={}), other)
    assert "expected llm or gpt2" in err("explain", "--checkpoint", str(other), "--artist", "Claude Monet",
                                         "--style", "Impressionism", "--genre", "Landscape")
    assert "did you mean Impressionism" in err("explain", "--checkpoint", missing, "--artist", "Claude Monet",
                                               "--style", "Impresionism", "--genre", "Landscape")
    assert "--conf" in err("explain", "--checkpoint", missing, "--artist", "Claude Monet", "--style",
                           "Impressionism", "--genre", "Landscape", "--conf", "high")
    assert "not both" in err("explain", "--checkpoint", missing, "--artist", "Claude Monet",
                             "--prompt-file", str(other))
    assert "give --artist" in err("explain", "--checkpoint", missing, "--artist", "Claude Monet")
    assert "no val.jsonl" in err("eval-llm", "--checkpoint", missing, "--data", str(tmp_path))


@pytest.mark.slow
def test_llm_job_runs_data_parallel_on_two_cpu_ranks(ws) -> None:
    # tokenizer auto (offline here: the corpus BPE) is built on rank 0 alone and sent to rank 1
    rec, _ = sv.start_job(ws, "llm", dict(TINY_LLM, epochs=1, grad_accum=2, tokenizer="auto"), gpu="cpu", gpus=2)
    wait_for(lambda: sv.job_status(ws, rec.id).state in ("finished", "failed"), 240, 0.2, "ddp job")
    st = sv.job_status(ws, rec.id)
    assert st.state == "finished", (st.reason, ws.run(rec.id).stdout.read_text()[-2000:])
    train = rows(ws, rec.id, "train")
    assert len({r["step"] for r in train}) == len(train)  # rank 0 alone writes
    assert train[-1]["loss"] < train[0]["loss"]
    assert ws.run(rec.id).stdout.read_text().count("training a byte-level BPE on the corpus instead") == 1


def test_gpt2_base_with_fewer_positions_than_block_size_is_refused(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from core.errors import NcanvasError
    from core.explain.dataset import generate
    from core.llm.hooks import GPT2Hooks
    from core.llm.tokenizer import train_bpe
    from jobs.gpt2 import GPT2Config as JobConfig

    base = tmp_path / "short-gpt2"
    tok = train_bpe((r["prompt"] + "\n" + r["explanation"] for r in generate(100, 1)), 500)
    GPT2LMHeadModel(GPT2Config(vocab_size=tok.vocab_size, n_positions=128, n_embd=32, n_layer=1, n_head=2,
                               bos_token_id=tok.eos_id, eos_token_id=tok.eos_id)).save_pretrained(base)
    PreTrainedTokenizerFast(tokenizer_object=tok.tok, eos_token="<|endoftext|>").save_pretrained(base)
    with pytest.raises(NcanvasError, match="128 positions; use --block-size 128"):
        GPT2Hooks().build(JobConfig(base=str(base)), {}, None)
    model, _ = GPT2Hooks().build(JobConfig(base=str(base), block_size=128), {}, None)
    assert model.config.n_positions == 128


@pytest.fixture
def no_gpt2_cached(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """transformers' AutoTokenizer with nothing cached and no hub: records each from_pretrained's keywords."""
    import transformers

    calls: list[dict] = []

    def from_pretrained(name, **kw):
        calls.append(kw)
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them "
                      "in the cached files.")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    return calls


def test_tests_never_reach_the_hub() -> None:
    import os

    assert os.environ["NCANVAS_OFFLINE"] == "1" and os.environ["HF_HUB_OFFLINE"] == "1"  # set by conftest.py


def test_auto_tokenizer_offline_never_probes_the_hub(no_gpt2_cached, monkeypatch, capsys) -> None:
    """Offline, ``--tokenizer auto`` asks the local cache once, never the network, and says why it fell back."""
    from core.llm import tokenizer

    def probe(*a, **kw):
        raise AssertionError("offline: the hub must not be probed")

    monkeypatch.setattr(tokenizer, "hub_reachable", probe)
    for env in ("NCANVAS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv("NCANVAS_OFFLINE", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv(env, "1")
        tok = tokenizer.build_tokenizer("auto", ["a painting of light"] * 20, 300)
        assert tok.name == "bpe" and no_gpt2_cached[-1] == {"local_files_only": True}
        assert "--tokenizer auto: offline (NCANVAS_OFFLINE / HF_HUB_OFFLINE)" in capsys.readouterr().out
    assert len(no_gpt2_cached) == 2
    with pytest.raises(Exception, match="cannot load tokenizer 'gpt2'"):
        tokenizer.build_tokenizer("gpt2", [], 300)
    assert no_gpt2_cached[-1] == {"local_files_only": True}


def test_auto_tokenizer_falls_back_when_the_hub_does_not_answer(no_gpt2_cached, monkeypatch, capsys) -> None:
    """Not marked offline but without network: one short probe (stubbed here), then the corpus BPE."""
    from core.llm import tokenizer

    monkeypatch.delenv("NCANVAS_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(tokenizer, "hub_reachable", lambda timeout=tokenizer.HUB_PROBE_S: False)
    tok = tokenizer.build_tokenizer("auto", ["a painting of light"] * 20, 300)
    assert tok.name == "bpe" and no_gpt2_cached == [{"local_files_only": True}]  # the cache only, no download
    out = capsys.readouterr().out
    assert "the Hugging Face hub (huggingface.co:443) did not answer within 3 s" in out and "byte-level BPE" in out
    # The probe answered but the download failed (stubbed): still the BPE, with the hub's reason in the log.
    monkeypatch.setattr(tokenizer, "hub_reachable", lambda timeout=tokenizer.HUB_PROBE_S: True)
    tok = tokenizer.build_tokenizer("auto", ["a painting of light"] * 20, 300)
    assert tok.name == "bpe" and no_gpt2_cached[1:] == [{"local_files_only": True}, {"local_files_only": False}]
    assert "cannot load tokenizer 'gpt2': We couldn't connect" in capsys.readouterr().out


def test_hub_probe_gives_up_quickly(monkeypatch) -> None:
    """A resolver that hangs does not hold the job: the probe thread is abandoned after its timeout."""
    import socket
    import threading

    from core.llm import tokenizer

    release = threading.Event()

    def hanging_connect(address, timeout=None):
        assert address == ("huggingface.co", 443)
        release.wait(5)  # a local stand-in for a stuck name lookup: no packet leaves the machine
        raise OSError("gave up")

    monkeypatch.setattr(socket, "create_connection", hanging_connect)
    for var in ("HF_ENDPOINT", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    t0 = time.perf_counter()
    assert tokenizer.hub_reachable(timeout=0.2) is False
    assert time.perf_counter() - t0 < 1.0
    release.set()
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.example.internal:8080")
    assert tokenizer._hub_address() == ("hub.example.internal", 8080)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.internal:3128")  # requests go there first
    assert tokenizer._hub_address() == ("proxy.example.internal", 3128)


def test_bf16_only_where_the_gpu_has_it_natively(monkeypatch) -> None:
    """Recent torch's ``is_bf16_supported()`` counts emulation (True on a T4/V100); those GPUs get fp16 + scaler."""
    from types import SimpleNamespace

    import torch

    from core.amp import native_bf16
    from jobs.loop import AmpPolicy

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    asked: list[bool] = []

    def emulating_gpu(including_emulation: bool = True) -> bool:  # a V100: bf16 only through emulation
        asked.append(including_emulation)
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", emulating_gpu)
    assert native_bf16() is False and asked == [False]
    monkeypatch.setattr(torch.amp, "GradScaler", lambda *a, **k: SimpleNamespace())  # no CUDA here to scale on
    amp = AmpPolicy(True, torch.device("cuda"))
    assert (amp.enabled, amp.dtype, str(amp)) == (True, torch.float16, "fp16 + grad scaling") and amp.scaler
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100
    amp = AmpPolicy(True, torch.device("cuda"))
    assert (amp.dtype, amp.scaler, str(amp)) == (torch.bfloat16, None, "bf16")
    assert str(AmpPolicy(True, torch.device("cpu"))) == "fp32" and not AmpPolicy(False, torch.device("cuda")).enabled
    # An older torch without the keyword: its True may mean "a bf16 tensor can be made"; the capability decides.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    for capability, native in (((7, 0), False), ((7, 5), False), ((8, 0), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, c=capability: c)
        assert native_bf16() is native
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert native_bf16() is False


def test_padding_follows_compile_and_tok_s_counts_real_tokens(monkeypatch) -> None:
    """A wrapped model (DDP) without torch.compile pads nothing, a step weighs micro-batches by target tokens,
    and throughput counts non-padding input tokens."""
    from types import SimpleNamespace

    import numpy as np
    import torch

    from core.explain.dataset import generate
    from core.llm import data as lmdata
    from core.llm import training
    from core.llm.data import tokenize
    from core.llm.hooks import OwnLMHooks
    from core.llm.model import ArtExpertLM, LMConfig
    from core.llm.tokenizer import train_bpe
    from jobs.lm import LMTask

    recs = list(generate(40, seed=4))
    tok = train_bpe((r["prompt"] + "\n" + r["explanation"] for r in recs), 400)
    split = tokenize(tok, recs, 512)
    torch.manual_seed(0)
    model = ArtExpertLM(LMConfig(vocab_size=tok.vocab_size, block_size=512, n_layer=1, n_head=2, n_kv_head=1,
                                 d_model=32, d_ff=64))
    task = LMTask(SimpleNamespace(compile=False, block_size=512), OwnLMHooks(), "llm")
    task.model, task.device, task.splits, task.pad = model, torch.device("cpu"), {"train": split}, 1
    task.lengths, task.targets = split.lengths, split.lengths - split.n_prompt
    pads: list[int] = []
    real_collate = lmdata.collate
    monkeypatch.setattr(lmdata, "collate", lambda sp, idx, pad=1: pads.append(pad) or real_collate(sp, idx, pad))
    micro = [np.array([0, 1, 2, 3]), np.array([4, 5, 6])]
    losses = [task.loss(model, idx, 1).detach() for idx in micro]
    assert pads == [1, 1]
    # one large batch's mean loss = the micro-batches' losses weighted by their target tokens
    x, y = real_collate(split, np.concatenate(micro))
    from core.llm.model import lm_loss

    whole = lm_loss(model(x), y)
    w = [task.weight(idx) for idx in micro]
    assert float(sum(lo * wi for lo, wi in zip(losses, w)) / sum(w)) == pytest.approx(float(whole), rel=1e-5)
    n_real = sum(task.count(idx) for idx in micro)
    assert n_real == sum(len(split.seqs[i]) - 1 for b in micro for i in b)  # inputs, padding excluded
    assert n_real < sum(len(b) * (max(len(split.seqs[i]) for i in b) - 1) for b in micro)
    # Under torch.compile (CUDA only) lengths round up to 64 when the block size allows it.
    assert training.pad_multiple(True, 512) == 64 and training.pad_multiple(True, 300) == 1
    assert training.pad_multiple(False, 512) == 1
    assert not training.compiles(SimpleNamespace(compile=True), torch.device("cpu"))
    assert training.compiles(SimpleNamespace(compile=True), torch.device("cuda"))


def test_lr_schedule_warms_up_then_decays_to_the_floor() -> None:
    from core.llm.training import lr_lambda

    f = lr_lambda(1000, 50, 0.1)
    assert f(0) == pytest.approx(1 / 50) and f(49) == pytest.approx(1.0)
    decay = [f(s) for s in range(49, 1001)]
    assert all(a >= b for a, b in zip(decay, decay[1:])) and f(1000) == pytest.approx(0.1)
    assert f(525) == pytest.approx(0.1 + 0.9 * 0.5, abs=1e-3)  # half-way down the cosine
    assert lr_lambda(100, 200, 0.0)(9) == pytest.approx(1.0)  # warmup capped at 10% of a short schedule


@pytest.mark.slow
def test_llm_early_stopping_ends_the_job(ws) -> None:
    cfg = dict(TINY_LLM, n_pairs=120, epochs=6, patience=1, lr=0.0)  # lr 0: the val loss can never improve
    jid = run_to_end(ws, "llm", cfg)
    rows_ = list(iter_rows(ws.run(jid).metrics))
    assert len([r for r in rows_ if r.get("split") == "val"]) == 2
    stop = [r for r in rows_ if r.get("event") == "early_stop"]
    assert len(stop) == 1 and stop[0]["epoch"] == 2 and stop[0]["patience"] == 1
