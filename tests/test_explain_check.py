"""The grounding checker (core.explain.check) on hand-written good and bad explanations."""

from __future__ import annotations

import json

import pytest

from core.explain.check import FACTS, LOW_BELOW, aliases, check, mentions, numbers, rates, sentences
from core.explain.labels import ARTISTS, GENRES, STYLES

MONET = {"artist": "Claude Monet", "style": "Impressionism", "genre": "Landscape", "confidences": [96.2, 94.8, 91.3]}
MONET_LOW = dict(MONET, confidences=[96.2, 62.4, 91.3])
MONET_CUBISM = dict(MONET, style="Post-Impressionism", confidences=[93.1, 66.0, 90.2])
PICASSO = {"artist": "Pablo Picasso", "style": "Cubism", "genre": "Landscape", "confidences": [88.7, 91.2, 64.5]}

GOOD = ("The network's strongest evidence for Claude Monet is the shimmering reflections on water and dissolving "
        "outlines. At 96.2%, the artist prediction is very high. Impressionism fits because the painting shows "
        "short broken brushstrokes (94.8%). The landscape label comes from a horizon line, at 91.3%.")


def failed(text: str, case: dict) -> set[str]:
    return {k for k, v in check(text, case).facts.items() if not v.ok}


def test_a_faithful_text_passes_every_fact_and_serialises() -> None:
    res = check(GOOD, MONET)
    assert res.passed, res.reasons
    d = json.loads(json.dumps(res.to_dict()))
    assert set(d["facts"]) == set(FACTS) and d["pass"] is True and d["reasons"] == []
    assert [i["head"] for i in d["facts"]["numbers"]["items"]] == ["artist", "style", "genre"]


def test_short_names_and_case_and_accents_name_the_labels() -> None:
    text = "Monet's impressionism shows in this LANDSCAPE."
    assert not failed(text, MONET) & {"artist", "style", "genre"}
    vg = {"artist": "Vincent van Gogh", "style": "Post-Impressionism", "genre": "Landscape",
          "confidences": [95.0, 95.0, 95.0]}
    assert "artist" not in failed("Van Gogh, Post-Impressionism, landscape.", vg)
    durer = dict(vg, artist="Albrecht Dürer", style="Northern Renaissance")
    assert "artist" not in failed("Durer's Northern Renaissance landscape.", durer)


def test_a_label_inside_a_longer_one_does_not_count() -> None:
    assert "style" in failed("Claude Monet, Post-Impressionism, landscape.", MONET)
    pic = dict(PICASSO, style="Cubism", genre="Portrait")
    assert "style" in failed("Pablo Picasso, Synthetic Cubism, portrait.", pic)
    assert "genre" in failed("Pablo Picasso, Cubism, self-portrait.", pic)


def test_every_short_name_identifies_one_artist() -> None:
    owners: dict[str, set[str]] = {}
    for a in ARTISTS:
        for name in aliases(a, "artist"):
            owners.setdefault(name.lower(), set()).add(a)
    for s in STYLES:
        for name in aliases(s, "style"):
            owners.setdefault(name.lower(), set()).add(s)
    for g in GENRES:
        owners.setdefault(g.lower(), set()).add(g)
    assert all(len(v) == 1 for v in owners.values()), {k: v for k, v in owners.items() if len(v) > 1}
    assert {m.label for m in mentions("Leonardo and Van Gogh met Turner and Hokusai.")} == {
        "Leonardo da Vinci", "Vincent van Gogh", "J. M. W. Turner", "Katsushika Hokusai"}


def test_numbers_must_be_the_prompts_at_their_precision() -> None:
    assert "numbers" in failed(GOOD.replace("94.8%", "80.7%"), MONET)
    assert "numbers" in failed(GOOD + " The model is 94.9 percent sure.", MONET)
    assert "numbers" not in failed(GOOD + " Roughly 95% for the style.", MONET)  # 94.8 rounded to 1
    assert "numbers" in failed(GOOD + " Roughly 93% for the style.", MONET)
    assert "numbers" not in failed(GOOD + " A probability of 0.962.", MONET)
    # years, centuries and counts are not confidences
    assert [n.text for n in numbers("Monet (French, 1840-1926), 15th century, c. 1490. 3 heads; 96.2%.")] == ["96.2%"]
    verdict = check(GOOD.replace("91.3%", "80.7%"), MONET).facts["numbers"]
    assert verdict.detail == "not a confidence of the prompt: 80.7%"
    assert [i["ok"] for i in verdict.items] == [True, True, False]


def test_another_artist_or_movement_claimed_is_caught() -> None:
    assert "claims" in failed(GOOD + " Degas used similar strokes.", MONET)
    bad_slot = GOOD.replace("Impressionism fits", "Post-Impressionism fits") + " Impressionism is named too."
    assert "claims" in failed(bad_slot, MONET)
    assert "claims" in failed(GOOD + " The style head chose Pointillism.", MONET)
    assert "claims" in failed(GOOD + " Monet worked mainly in Baroque.", MONET)  # not his, not related
    assert "claims" in failed(GOOD + " Realism (94.8%) is the style.", MONET)


def test_usual_and_related_movements_are_not_claims() -> None:
    text = ("Claude Monet is not usually associated with Post-Impressionism; he worked mainly in Impressionism. "
            "Classifiers often confuse Post-Impressionism with Impressionism, so Impressionism is the more likely "
            "reading. At 66.0%, the style prediction is low. The landscape label comes from a horizon line at 90.2%; "
            "the artist call (93.1%) is very high.")
    res = check(text, MONET_CUBISM)
    assert res.passed, res.reasons
    sc = {"artist": "Pablo Picasso", "style": "Synthetic Cubism", "genre": "Portrait",
          "confidences": [95.0, 95.0, 95.0]}  # "early Cubism" is part of Synthetic Cubism's own description
    assert "claims" not in failed("Pablo Picasso: Synthetic Cubism shows brighter colours than early Cubism; a "
                                  "portrait.", sc)


def test_low_confidence_must_be_called_low_and_never_certain() -> None:
    assert LOW_BELOW == 70.0
    base = ("Claude Monet at 96.2% is very high. Impressionism fits at 62.4%. The landscape label comes from a "
            "horizon line at 91.3%.")
    assert "low_confidence" in failed(base, MONET_LOW)
    assert "low_confidence" not in failed(base + " The style prediction is uncertain.", MONET_LOW)
    assert "low_confidence" not in failed(base.replace("fits at 62.4%", "is a tentative call at 62.4%"), MONET_LOW)
    certain = base + " The style prediction is uncertain. All three predictions are very reliable."
    assert "low_confidence" in failed(certain, MONET_LOW)
    assert "low_confidence" in failed(base + " At 62.4% the style call is confident.", MONET_LOW)
    negated = base + " At 62.4% the style call is low: a guess, not a firm identification."
    assert "low_confidence" not in failed(negated, MONET_LOW)
    assert not check(GOOD, MONET).facts["low_confidence"].applies


def test_mismatches_must_be_flagged_and_fits_not_called_mismatches() -> None:
    text = ("Claude Monet (93.1%) with Post-Impressionism (66.0%, low) in a landscape (90.2%). "
            "All three predictions agree.")
    assert {"style_mismatch"} <= failed(text, MONET_CUBISM)
    flagged = text.replace("All three predictions agree.", "Post-Impressionism is unusual for Monet.")
    assert "style_mismatch" not in failed(flagged, MONET_CUBISM)
    assert "style_mismatch" in failed(GOOD + " Impressionism is unusual for Monet.", MONET)
    genre = dict(MONET, genre="Religious Painting")
    g_text = GOOD.replace("The landscape label comes from a horizon line", "Religious painting shows haloes")
    assert "genre_mismatch" in failed(g_text, genre)
    assert "genre_mismatch" not in failed(g_text + " Religious painting is not his usual subject.", genre)
    # a word of the movement's own description is not a mismatch flag (Mannerism's idea mentions "tension")
    greco = {"artist": "El Greco", "style": "Mannerism", "genre": "Portrait", "confidences": [95.0, 95.0, 95.0]}
    assert failed("El Greco, Mannerism: Renaissance harmony is deliberately strained for elegance and tension; "
                  "a portrait.", greco) == set()


@pytest.mark.parametrize("tail, why", [
    ("", "ends on a sentence"),
    (" The model also", "ends mid-sentence"),
    (" The style is clear. The style is clear.", "repeats a sentence"),
])
def test_ending_and_loops(tail: str, why: str) -> None:
    assert check(GOOD + tail, MONET).facts["ending"].detail.startswith(why)
    looping = GOOD[:-1] + ", " + ", ".join(["the model sees one two three four five six seven eight"] * 3) + "."
    assert "loops" in check(looping, MONET).facts["ending"].detail
    assert not check("", MONET).passed


def test_sentence_split_keeps_initials_and_circa_together() -> None:
    case = {"artist": "J. M. W. Turner", "style": "Romanticism", "genre": "Seascape", "confidences": [90, 90, 90]}
    text = "J. M. W. Turner (British, 1775-1851) painted Romanticism seascapes, c. 1800. Confidence 90.0%."
    assert check(text, case).passed, check(text, case).reasons
    assert len(sentences(text)) == 2


def test_rates_count_each_fact_where_it_applies() -> None:
    r = rates([check(GOOD, MONET), check(GOOD.replace("94.8%", "80.7%"), MONET)])
    assert r.rate() == 0.5 and r.rate("numbers") == 0.5 and r.rate("labels") == 1.0
    assert r.rate("low_confidence") is None  # never applied


def test_marks_put_a_cross_next_to_each_contradicted_fact() -> None:
    from core.explain.check import format_marks, marks

    text = GOOD.replace("94.8%", "80.7%") + " Degas."
    m = marks(check(text, MONET_LOW), MONET_LOW)
    assert m[:3] == [(True, "artist Claude Monet"), (True, "style Impressionism"), (True, "genre Landscape")]
    assert (False, "80.7%") in m and (True, "96.2%") in m
    assert (False, "low confidence called low") in m and (False, "names another artist, Degas") in m
    line = format_marks(check(GOOD, MONET), MONET)
    assert line.startswith("✓ artist Claude Monet  ✓ style Impressionism") and "✗" not in line


@pytest.mark.parametrize("module", ["core.explain.check", "core.explain.faithsets", "core.explain.batch",
                                    "core.explain.presets", "core.explain.templates"])
def test_faithfulness_light_modules_import_no_torch(module: str) -> None:
    from tests.test_import_hygiene import _imported

    assert not {"torch", "torchvision", "transformers"} & _imported(f"import {module}")


def test_the_artists_usual_movement_stated_plainly_is_not_a_claim() -> None:
    text = ("Claude Monet is usually associated with Impressionism (1860s-1880s France), and his usual movement is "
            "Impressionism, yet the style head chose Post-Impressionism at 66.0%, a low call. A landscape at 90.2%; "
            "the artist call at 93.1%. Post-Impressionism is unusual for him.")
    res = check(text, MONET_CUBISM)
    assert res.passed, res.reasons
    assert "claims" in failed(text.replace("chose Post-Impressionism", "chose Impressionism"), MONET_CUBISM)
