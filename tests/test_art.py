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
    assert res.exit_code == 1 and "unknown backbone 'resnt18'; did you mean resnet18" in res.stderr
    assert not list((tmp_path / "logs").glob("artcnn-*"))
    res = CliRunner().invoke(app, ["--home", str(tmp_path), "train", "artcnn", "--backbone", "fasterrcnn_resnet50_fpn"])
    assert res.exit_code == 1 and "unknown backbone" in res.stderr  # a detection model is no classifier backbone
