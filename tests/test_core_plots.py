"""Issue 13.22: training_curves.png names its axes and keeps every label off the curves; misclassified.png says
what its "3>7" labels mean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_curve_labels_sit_outside_the_data_area_and_apart() -> None:
    from core.plotpng import Panel, label_box, panel_boxes, panel_labels

    panels = [Panel("loss", {"train/loss": ([1, 50, 100], [2.3, 0.5, 0.1]), "val/loss": ([50, 100], [0.6, 0.2]),
                             "test/loss": ([100], [0.21])}),
              Panel("val perplexity", {"val/ppl": ([1000, 2000], [123456.789, 1.0001])})]
    size, boxes = panel_boxes(len(panels))
    draw = ImageDraw.Draw(Image.new("RGB", size))
    for panel, box in zip(panels, boxes, strict=True):
        labels = panel_labels(draw, panel, box)
        texts = [lb.text for lb in labels]
        assert "step" in texts and panel.title in texts[1:]  # the x axis and the y axis (the quantity) are named
        if panel.title == "loss":  # min, middle and max of both axes
            assert {"0.1", "1.2", "2.3", "1", "50.5", "100"} <= set(texts)
        boxes_ = [label_box(draw, lb) for lb in labels]
        inside = (box[0] + 1, box[1] + 1, box[2] - 1, box[3] - 1)
        assert not [lb.text for lb, b in zip(labels, boxes_, strict=True) if _overlap(b, inside)]
        clashes = [(labels[i].text, labels[j].text) for i in range(len(labels)) for j in range(i + 1, len(labels))
                   if _overlap(boxes_[i], boxes_[j])]
        assert not clashes
        assert all(0 <= b[0] and b[2] <= size[0] and 0 <= b[1] and b[3] <= size[1] for b in boxes_)


def test_curves_png_is_drawn(tmp_path: Path) -> None:
    from core.plotpng import Panel, line_chart_png

    path = line_chart_png(tmp_path / "c.png", [Panel("loss", {"train/loss": ([1, 2], [1.0, 0.5])}), Panel("acc")])
    img = Image.open(path)
    assert img.size[0] > 800 and img.size[1] > 300


def test_the_gallery_caption_explains_its_labels(tmp_path: Path) -> None:
    import torch

    from core.vision.data import TensorData
    from core.vision.evaluate import gallery_caption, misclassified_gallery

    data = TensorData(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.tensor([3, 1, 2, 5]))
    preds = torch.tensor([7, 1, 2, 0])
    names = [str(i) for i in range(10)]
    wrong = misclassified_gallery(data, preds, names, tmp_path / "m.png", tmp_path / "m.json", scale=3)
    assert wrong == 2
    img = np.asarray(Image.open(tmp_path / "m.png").convert("L"))
    grid_h = (2 + 28 + 2) * 3  # one row of tiles, enlarged
    assert img.shape[0] > grid_h and (img[grid_h:] < 128).any()  # a caption strip with text below the tiles
    items = [{"true": 3, "predicted": 7, "true_name": "3", "predicted_name": "7"}]
    assert gallery_caption(items).endswith("each label is true>predicted, e.g. 3>7 = true 3, predicted 7")
    fashion = [{"true": 3, "predicted": 7, "true_name": "Dress", "predicted_name": "Sneaker"}]
    assert gallery_caption(fashion).endswith("true>predicted (class numbers), e.g. 3>7 = true Dress, predicted Sneaker")
