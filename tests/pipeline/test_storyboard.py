import copy

import pytest

from worker.pipeline import BadBrief, build_storyboard
from worker.pipeline.storyboard import CHUNK_SECONDS


@pytest.mark.parametrize("quality", ["low", "medium", "high"])
def test_scene_frames_add_up_to_the_target_exactly(sample_brief, quality):
    brief = copy.deepcopy(sample_brief)
    brief["config"]["quality"] = quality
    board = build_storyboard(brief)
    assert board["total_frames"] == round(brief["target_duration_id"] * board["fps"])
    assert sum(s["frames"] for s in board["scenes"]) == board["total_frames"]
    assert sum(c["frames"] for c in board["chunks"]) == board["total_frames"]
    starts = [s["start_frame"] for s in board["scenes"]]
    assert starts == sorted(starts) and starts[0] == 0
    assert len(board["scenes"]) == len(brief["keywords_id"]) + 2
    assert [s["kind"] for s in board["scenes"]][::len(board["scenes"]) - 1] == ["title", "closing"]


def test_chunks_are_contiguous_and_short(sample_brief):
    board = build_storyboard(sample_brief)
    position = 0
    for chunk in board["chunks"]:
        assert chunk["start_frame"] == position
        assert 0 < chunk["frames"] <= 1.5 * CHUNK_SECONDS * board["fps"]
        position += chunk["frames"]
    assert position == board["total_frames"]


def test_chunk_cuts_avoid_transitions(briefs):
    board = build_storyboard(briefs[0])
    cuts = [c["start_frame"] for c in board["chunks"][1:]]
    for scene in board["scenes"][1:]:
        assert not any(scene["start_frame"] < cut < scene["start_frame"] + board["transition_frames"] for cut in cuts)


def test_language_follows_the_brief(briefs):
    assert build_storyboard(briefs[0])["lang"] == "zh"
    english = build_storyboard(briefs[3])
    assert english["lang"] == "en"
    assert all(not any("\u4e00" <= ch <= "\u9fff" for ch in s["caption"]) for s in english["scenes"])
    chinese = build_storyboard(briefs[1])
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in s["caption"]) for s in chinese["scenes"])


def test_same_seed_same_storyboard_and_other_seed_differs(make_brief):
    assert build_storyboard(make_brief()) == build_storyboard(make_brief())
    other = build_storyboard(make_brief(config={"seed": 8}))
    assert other != build_storyboard(make_brief())


def test_default_seed_comes_from_the_brief(briefs):
    brief = copy.deepcopy(briefs[2])
    first, second = build_storyboard(brief), build_storyboard(copy.deepcopy(brief))
    assert first == second
    brief["user_description_id"] += "!"
    assert build_storyboard(brief)["seed"] != first["seed"]


def test_resolution_and_quality_map_to_settings(make_brief):
    board = build_storyboard(make_brief(config={"resolution": "256x144", "quality": "high"}))
    assert (board["width"], board["height"], board["fps"], board["crf"]) == (256, 144, 30, 20)
    low = build_storyboard(make_brief())
    assert (low["fps"], low["crf"]) == (24, 28)


@pytest.mark.parametrize("change", [
    {"theme_id": ""},
    {"theme_id": None},
    {"keywords_id": "科技"},
    {"target_duration_id": 0},
    {"target_duration_id": "60"},
    {"target_duration_id": 3, "keywords_id": ["a", "b", "c", "d", "e"]},
    {"config": {"resolution": "160x90"}},
    {"config": {"resolution": "1921x1080"}},
    {"config": {"resolution": "big"}},
    {"config": {"quality": "ultra"}},
    {"config": {"seed": "7"}},
])
def test_unusable_briefs_raise_bad_brief(change, make_brief):
    with pytest.raises(BadBrief) as info:
        build_storyboard(make_brief(**change))
    assert info.value.stage == "storyboard"
    assert not info.value.retryable


def test_no_caption_repeats_another():
    """The title shows the description (or its first clause); keyword scenes never say it again."""
    import json
    from pathlib import Path

    for brief in json.loads((Path(__file__).parent / "briefs.json").read_text(encoding="utf-8")):
        captions = [scene["caption"] for scene in build_storyboard(brief)["scenes"]]
        title = captions[0]
        assert len(set(captions)) == len(captions), captions
        assert all(title not in caption for caption in captions[1:]), captions
