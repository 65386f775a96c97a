"""The multi-head art classifier: data layout, model shapes, masked loss, and a real short training run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from core.art.data import augment, read_table
from core.art.labels import ARTISTS, GENRES, STYLES, artist_genres, artist_styles
from core.art.model import ArtClassifier, ArtConfig, HeadView, last_conv_name, masked_loss
from core.art.synthetic import render, sample_labels, write_dataset
from core.errors import NcanvasError
from tui.cli import app


def test_label_sets_have_the_documented_sizes() -> None:
    assert (len(ARTISTS), len(STYLES), len(GENRES)) == (25, 27, 19)
    for a in ARTISTS:
        assert set(artist_styles(a)) <= set(STYLES) and set(artist_genres(a)) <= set(GENRES)


def test_three_heads_shapes_and_views() -> None:
    model = ArtClassifier(ArtConfig("resnet18"))
    out = model(torch.randn(2, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"artist": (2, 25), "style": (2, 27), "genre": (2, 19)}
    assert HeadView(model, "style")(torch.randn(1, 3, 64, 64)).shape == (1, 27)
    assert last_conv_name(model) == "backbone.layer4.1.conv2"
    small = ArtClassifier(ArtConfig("mobilenet_v3_small"))
    assert small(torch.randn(1, 3, 64, 64))["genre"].shape == (1, 19)


def test_masked_loss_ignores_missing_labels() -> None:
    logits = {"artist": torch.randn(3, 25), "style": torch.randn(3, 27), "genre": torch.randn(3, 19)}
    full = masked_loss(logits, torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]]))
    no_genre = masked_loss(logits, torch.tensor([[0, 1, -1], [3, 4, -1], [6, 7, -1]]))
    only_genre = masked_loss(logits, torch.tensor([[-1, -1, 2], [-1, -1, 5], [-1, -1, 8]]))
    assert torch.allclose(full, no_genre + only_genre)
    assert masked_loss(logits, torch.full((3, 3), -1)).item() == 0.0


def test_synthetic_set_is_deterministic_and_in_wikiart_layout(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", 12, seed=3, size=32)
    b = write_dataset(tmp_path / "b", 12, seed=3, size=32)
    assert a.read_text() == b.read_text()
    assert (tmp_path / "a/images/000005.png").read_bytes() == (tmp_path / "b/images/000005.png").read_bytes()
    table = read_table(a)
    assert len(table.paths) == 12 and (table.labels >= 0).all()
    for artist, style, genre in sample_labels(50, 0):
        assert style in artist_styles(artist) and genre in artist_genres(artist)
    assert np.asarray(render(ARTISTS[0], STYLES[0], GENRES[0], 1, 48)).shape == (48, 48, 3)


def test_csv_with_ids_unknown_names_and_missing_columns(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_dataset(tmp_path, 3, seed=0, size=16)
    rows = list(csv.reader(open(tmp_path / "labels.csv")))
    rows[1][1] = "Nobody Famous"
    rows[2][2] = "4"  # an id instead of a name
    rows[3][3] = ""  # a missing label
    rows.append(rows[1][:1] + ["Nobody Famous", rows[1][2], rows[1][3]])
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    table = read_table(tmp_path)
    assert table.labels[0, 0] == -1 and table.labels[1, 1] == 4 and table.labels[2, 2] == -1
    assert capsys.readouterr().out.count("Nobody Famous") == 1  # reported once
    (tmp_path / "bad.csv").write_text("file,artist\nx.png,y\n")
    with pytest.raises(NcanvasError, match="lacks column"):
        read_table(tmp_path / "bad.csv")
    with pytest.raises(NcanvasError, match="no labels CSV"):
        read_table(tmp_path / "nope")


def test_augment_keeps_shape_and_is_seeded() -> None:
    x = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
    a = augment(x, torch.Generator().manual_seed(0))
    b = augment(x, torch.Generator().manual_seed(0))
    assert a.shape == (4, 3, 32, 32) and torch.equal(a, b)


def test_cli_art_synthetic(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["data", "art-synthetic", "--out", str(tmp_path / "art"), "--n", "5", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["images"] == 5 and (tmp_path / "art/labels.csv").is_file()


@pytest.mark.slow
def test_short_training_beats_chance_on_every_head(ws) -> None:
    from jobs import supervisor as sv
    from tests.jobhelpers import wait_for

    rec, _ = sv.start_job(ws, "artcnn", {"synthetic_n": 600, "image_size": 32, "epochs": 4, "batch_size": 64,
                                         "lr": 3e-3, "val_fraction": 0.2})
    wait_for(lambda: sv.job_status(ws, rec.id).state in ("finished", "failed"), timeout=400, interval=0.5)
    st = sv.job_status(ws, rec.id)
    assert st.state == "finished", st.reason
    from core.metrics import iter_rows

    val = [r for r in iter_rows(ws.run(rec.id).metrics) if r.get("split") == "val"][-1]
    from core.art.data import read_table, split_indices

    # the synthetic labels are skewed (a few styles and genres are common): beat always-the-most-common-class
    table = read_table(ws.run(rec.id).ckpt_dir / "synthetic-art")
    _, val_idx = split_indices(len(table.paths), 0.2, 0)
    for i, head in enumerate(("artist", "style", "genre")):
        labels = table.labels[val_idx, i]
        majority = labels.bincount().max().item() / len(labels)
        print(f"artcnn val acc {head}: {val[f'acc_{head}']:.3f} (most common class {majority:.3f})")
        assert val[f"acc_{head}"] > majority + 0.1, (head, majority, val)
    run = ws.run(rec.id)
    assert run.best.is_file() and run.curves_png.is_file() and run.epoch_ckpt(0).is_file()


def test_unknown_backbone_is_refused_before_the_job_exists(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["--home", str(tmp_path), "train", "artcnn", "--backbone", "resnt18"])
    assert res.exit_code == 1 and "--backbone 'resnt18': unknown backbone; did you mean resnet18" in res.stderr
    assert not list((tmp_path / "logs").glob("artcnn-*"))
    res = CliRunner().invoke(app, ["--home", str(tmp_path), "train", "artcnn", "--backbone", "fasterrcnn_resnet50_fpn"])
    assert res.exit_code == 1 and "unknown backbone" in res.stderr  # a detection model is no classifier backbone


# ---------------------------------------------------------------------------------------------- the artcnn job

TINY = {"backbone": "mobilenet_v3_small", "image_size": 16, "epochs": 2, "batch_size": 8, "val_fraction": 0.25,
        "patience": 0}  # 48 images -> 36 train (5 batches: 8,8,8,8,4, never a lone BatchNorm sample) / 12 val


@pytest.fixture(scope="module")
def art_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.vision_helpers import make_art_set

    return make_art_set(tmp_path_factory.mktemp("art") / "set", n=48, size=16)


@pytest.fixture(scope="module")
def art_ref(tmp_path_factory: pytest.TempPathFactory, art_set: Path):
    """One uninterrupted tiny run, shared by the tests that compare against it."""
    from core.paths import Workspace
    from tests.vision_helpers import run_art_train

    ws = Workspace(tmp_path_factory.mktemp("art-ref")).ensure()
    return run_art_train(ws, "artcnn-0001", dict(TINY, data=str(art_set)))


def _art_rows(rt) -> list[tuple]:
    """Every metric row without its timing fields (t, img_s): what must repeat exactly."""
    from core.metrics import iter_rows

    return [tuple(sorted((k, v) for k, v in r.items() if k not in ("t", "img_s")))
            for r in iter_rows(rt.paths.metrics) if "split" in r]


def _same_weights(a: Path, b: Path) -> bool:
    from core.checkpoint import load_checkpoint

    sa, sb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_artcnn_stop_and_resume_is_bit_identical(ws, art_set: Path, art_ref) -> None:
    from core.checkpoint import load_checkpoint
    from tests.vision_helpers import run_art_train

    values = dict(TINY, data=str(art_set))
    a = run_art_train(ws, "artcnn-0002", values, stop_at_step=3)  # mid-epoch
    ck = load_checkpoint(a.paths.latest, kind="artcnn")
    assert (ck["step"], ck["epoch"], ck["batch_in_epoch"]) == (3, 0, 3)
    run_art_train(ws, "artcnn-0002", values, resuming=True, stop_at_step=5)  # the last batch of epoch 0
    ck = load_checkpoint(a.paths.latest, kind="artcnn")
    assert (ck["step"], ck["epoch"], ck["batch_in_epoch"]) == (5, 0, 5)
    b = run_art_train(ws, "artcnn-0002", values, resuming=True)
    assert len(_art_rows(art_ref)) == 10 + 2 and _art_rows(b) == _art_rows(art_ref)
    assert _same_weights(b.paths.latest, art_ref.paths.latest)
    assert _same_weights(b.paths.best, art_ref.paths.best)


def test_artcnn_resume_from_a_mismatched_file_is_one_line(ws, art_set: Path) -> None:
    import shutil

    from core.errors import CheckpointError
    from tests.vision_helpers import run_art_train

    other = run_art_train(ws, "artcnn-0003", dict(TINY, data=str(art_set), backbone="shufflenet_v2_x0_5",
                                                  epochs=1), stop_at_step=1)
    job = run_art_train(ws, "artcnn-0004", dict(TINY, data=str(art_set), epochs=1), stop_at_step=1)
    shutil.copy(other.paths.latest, job.paths.latest)  # an artcnn file of another backbone
    with pytest.raises(CheckpointError, match="does not fit this model") as err:
        run_art_train(ws, "artcnn-0004", dict(TINY, data=str(art_set), epochs=1), resuming=True)
    assert "\n" not in str(err.value)


def test_streaming_decodes_per_batch_and_trains_identically(ws, art_set: Path, art_ref,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import core.art.data as art_data
    from tests.vision_helpers import run_art_train

    decoded: list[int] = []
    real = art_data.load_images
    monkeypatch.setattr(art_data, "load_images", lambda paths, size: decoded.append(len(paths)) or real(paths, size))
    rt = run_art_train(ws, "artcnn-0005", dict(TINY, data=str(art_set), stream=True))
    assert max(decoded) <= 12 and sum(decoded) == 2 * (36 + 12)  # batches and val chunks, never the whole set
    assert _art_rows(rt) == _art_rows(art_ref)  # the same pixels, so the same run
    decoded.clear()
    run_art_train(ws, "artcnn-0006", dict(TINY, data=str(art_set), epochs=1))
    assert decoded == [48]  # in memory: decoded once


def test_val_rows_carry_per_head_accuracy_and_top5_as_counted_from_the_model(art_set: Path, art_ref) -> None:
    from core.art.api import load_art_classifier
    from core.art.data import load_images, normalize, read_table, split_indices
    from core.metrics import iter_rows

    val = [r for r in iter_rows(art_ref.paths.metrics) if r.get("split") == "val"][-1]
    table = read_table(art_set)
    _, val_idx = split_indices(len(table.paths), TINY["val_fraction"], 0)
    clf = load_art_classifier(art_ref.paths.latest)  # the weights the last val row was measured with
    with torch.no_grad():
        out = clf.model(normalize(load_images([table.paths[i] for i in val_idx.tolist()], 16)))
    for i, head in enumerate(("artist", "style", "genre")):
        y = table.labels[val_idx, i].numpy()
        order = np.argsort(-out[head].numpy(), axis=1)
        assert val[f"acc_{head}"] == pytest.approx(float(np.mean(order[:, 0] == y)))
        assert val[f"top5_{head}"] == pytest.approx(float(np.mean([y[k] in order[k, :5] for k in range(len(y))])))
        assert val[f"top5_{head}"] >= val[f"acc_{head}"]
    assert val["top5"] == pytest.approx(np.mean([val[f"top5_{h}"] for h in ("artist", "style", "genre")]))


def test_missing_labels_are_masked_in_a_real_run(ws, tmp_path: Path) -> None:
    from core.checkpoint import load_checkpoint
    from core.metrics import iter_rows
    from tests.vision_helpers import make_art_set, run_art_train

    csv_path = make_art_set(tmp_path / "art", n=48, size=16)
    rows = list(csv.reader(open(csv_path)))
    for k, row in enumerate(rows[1:]):
        row[3] = ""  # no genre anywhere
        if k % 3 == 0:
            row[1] = ""  # and a third of the artists missing
    with open(csv_path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    rt = run_art_train(ws, "artcnn-0001", dict(TINY, data=str(csv_path), epochs=1))
    metrics = list(iter_rows(rt.paths.metrics))
    train = [r for r in metrics if r.get("split") == "train"]
    assert len(train) == 5 and all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in train)
    (val,) = [r for r in metrics if r.get("split") == "val"]
    assert "acc_genre" not in val and "top5_genre" not in val  # no labels: no accuracy, rather than 0 %
    assert val["acc"] == pytest.approx((val["acc_artist"] + val["acc_style"]) / 2)
    before = load_checkpoint(rt.paths.epoch_ckpt(0))["model"]
    after = load_checkpoint(rt.paths.latest)["model"]
    assert torch.equal(before["heads.genre.weight"], after["heads.genre.weight"])  # never got a gradient
    assert not torch.equal(before["heads.artist.weight"], after["heads.artist.weight"])


# ---------------------------------------------------------------------------------------------- ImageNet weights

@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict]:
    """torch.hub with an empty cache and downloads allowed; records each get_state_dict call's arguments."""
    import torchvision

    monkeypatch.delenv("NCANVAS_OFFLINE", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    calls: list[dict] = []
    real_builder = torchvision.models.get_model_builder

    def builder(name: str):  # every model is built without weights: the weights come through get_state_dict
        ctor = real_builder(name)

        def build(**kw):
            assert kw.get("weights") is None, kw
            return ctor(**kw)
        return build

    monkeypatch.setattr(torchvision.models, "get_model_builder", builder)
    return calls


def test_pretrained_weights_are_loaded_weights_only(fake_hub: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    from core.art.model import build_backbone

    torch.manual_seed(123)
    source = torchvision.models.shufflenet_v2_x0_5().state_dict()

    def get_state_dict(self, *args, **kwargs):
        fake_hub.append({"weights": str(self), "args": args, **kwargs})
        return source

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", get_state_dict)
    model, note = build_backbone("shufflenet_v2_x0_5", pretrained=True)
    assert fake_hub == [{"weights": "ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1", "args": (), "progress": True,
                         "check_hash": True, "weights_only": True}]
    assert note == "ImageNet weights ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1"
    assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict",
                        lambda self, **kw: {"conv1.0.weight": torch.zeros(1)})
    model, note = build_backbone("shufflenet_v2_x0_5", pretrained=True)  # a file for another architecture
    assert note.startswith("ImageNet weights ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1 do not fit (RuntimeError")
    assert note.endswith("training from random init") and "\n" not in note


def test_pretrained_googlenet_gets_what_torchvision_sets_with_weights(fake_hub: list[dict],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    from core.art.model import build_backbone

    source = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False).state_dict()
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", lambda self, **kw: source)
    model, note = build_backbone("googlenet", pretrained=True)
    assert note == "ImageNet weights GoogLeNet_Weights.IMAGENET1K_V1"
    # ImageNet-normalised input re-scaled as the weights expect; the auxiliary heads loaded, then dropped
    assert model.transform_input and not model.aux_logits and model.aux1 is None and model.aux2 is None
    model.eval()
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


def test_pretrained_offline_falls_back_to_random_init_with_a_note_in_the_log(
        fake_hub: list[dict], monkeypatch: pytest.MonkeyPatch, ws, art_set: Path,
        capsys: pytest.CaptureFixture) -> None:
    import urllib.error

    import torchvision

    from core.art.model import build_backbone
    from tests.vision_helpers import run_art_train

    def unreachable(self, **kwargs):
        fake_hub.append(kwargs)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", unreachable)
    run_art_train(ws, "artcnn-0001", dict(TINY, data=str(art_set), epochs=1, pretrained=True))
    log = capsys.readouterr().out
    assert "[ncanvas] backbone mobilenet_v3_small: could not load ImageNet weights (URLError: <urlopen error " \
           "[Errno -3] Temporary failure in name resolution>); training from random init" in log
    assert len(fake_hub) == 1
    monkeypatch.setenv("NCANVAS_OFFLINE", "1")  # offline: the cache alone is asked, nothing is downloaded
    _, note = build_backbone("mobilenet_v3_small", pretrained=True)
    assert len(fake_hub) == 1 and "downloads disabled (NCANVAS_OFFLINE=1) and no cached copy" in note
