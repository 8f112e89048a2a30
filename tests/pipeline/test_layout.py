import pytest

from worker.pipeline.fonts import MissingGlyph, check_coverage, font_chain
from worker.pipeline.images import _text_layers, safe_box
from worker.pipeline.layout import NO_END, NO_START, fit_text, text_width, wrap
from worker.pipeline.storyboard import build_storyboard

LONG_ZH = ("为一座南方城市制作旅游推广片，按早、中、晚的顺序展示景点和美食！“古镇”（江景）与「夜景」交织，"
           "让每一位游客都能感受到这座城市独特的魅力与温度；欢迎你来！")
LONG_EN = ("Step-by-step walkthrough for new users, friendly tone, one step per scene; it explains "
           "internationalization, observability and what happens after you invite your whole team.")
RESOLUTIONS = ["1920x1080", "1080x1920", "720x720", "256x144"]


def test_chinese_and_mixed_text_is_covered():
    check_coverage(LONG_ZH + LONG_EN + "团队 growth 下一步 2026", font_chain())
    check_coverage("感谢观看 Thank you", font_chain(bold=True))


@pytest.mark.parametrize("char", ["\U0010FFFD", "\U000E0FFF", "\u0378"])
def test_a_character_no_font_has_raises(char):
    with pytest.raises(MissingGlyph):
        check_coverage("科技" + char, font_chain())


@pytest.mark.parametrize("text", [LONG_ZH, LONG_EN])
@pytest.mark.parametrize("width", [120, 200, 333, 640])
def test_wrap_obeys_width_and_punctuation_rules(text, width):
    chain = font_chain()
    lines = wrap(text, chain, 24, width)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    for i, line in enumerate(lines):
        assert text_width(line, chain, 24) <= width
        if i:
            assert line[0] not in NO_START, lines
        if i < len(lines) - 1:
            assert line[-1] not in NO_END, lines


def test_english_wraps_between_words():
    lines = wrap(LONG_EN, font_chain(), 24, 300)
    words = set(LONG_EN.split())
    assert all(set(line.split()) <= words for line in lines)


def test_text_that_cannot_fit_is_ellipsized_not_overflowing():
    fitted = fit_text(LONG_ZH * 3, font_chain(), 200, 80, max_size=30, min_size=12, max_lines=2)
    assert len(fitted.lines) <= 2 and fitted.lines[-1].endswith("…")
    width, height = fitted.box(font_chain())
    assert width <= 200 and height <= 80


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("text", [LONG_ZH, LONG_EN])
def test_text_layers_stay_inside_title_safe_area(resolution, text, make_brief):
    board = build_storyboard(make_brief(config={"resolution": resolution}, user_description_id=text,
                                         keywords_id=["轻薄", "extraordinarily-long-keyword-for-layout"]))
    left, top, right, bottom = safe_box(board["width"], board["height"])
    for scene in board["scenes"]:
        for image, x, y, _start, slide in _text_layers(scene, board):
            ink = image.getchannel("A").getbbox()
            assert ink is not None
            assert left <= x + ink[0] and x + ink[2] <= right
            # The layer slides up into place: its lowest position must be safe too.
            assert top <= y + ink[1] and y + ink[3] + slide <= bottom
