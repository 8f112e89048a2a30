import shutil
import subprocess

import numpy as np
import pytest

from worker.pipeline import audio as audio_module
from worker.pipeline.audio import read_wav, render_audio
from worker.pipeline.loudness import integrated_loudness
from worker.pipeline.proc import ffmpeg_exe
from worker.pipeline.storyboard import build_storyboard


def ffmpeg_lufs(path) -> float:
    log = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128",
                          "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    summary = log.split("Integrated loudness:")[-1]
    return float(summary.split("I:")[1].split("LUFS")[0])


def test_loudness_meter_agrees_with_ffmpeg(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(48000 * 6) / 48000
    signal = np.stack([0.2 * np.sin(2 * np.pi * 220 * t) * (t > 1), 0.05 * rng.standard_normal(t.size)], 1)
    audio_module.write_wav(tmp_path / "x.wav", signal)
    ours = integrated_loudness(read_wav(tmp_path / "x.wav"))
    assert ours == pytest.approx(ffmpeg_lufs(tmp_path / "x.wav"), abs=0.3)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_mixed_track_is_minus_16_lufs_with_subtitles_inside_the_video(tmp_path, lang, quiet, never, briefs,
                                                                       make_brief):
    english = {k: briefs[3][k] for k in ("theme_id", "keywords_id", "user_description_id")}
    board = build_storyboard(make_brief(**english, target_duration_id=8) if lang == "en" else make_brief())
    assert board["lang"] == lang
    result = render_audio(board, tmp_path, quiet, never)
    samples = read_wav(result["wav"])
    assert samples.shape == (round(board["duration"] * 48000), 2)
    assert integrated_loudness(samples) == pytest.approx(-16.0, abs=1.0)
    assert ffmpeg_lufs(result["wav"]) == pytest.approx(-16.0, abs=1.0)
    assert np.abs(samples).max() < 1.0
    assert result["narration"] is bool(shutil.which("espeak-ng"))
    assert len(result["cues"]) == len(board["scenes"])
    for start, end, _text in result["cues"]:
        assert 0 <= start < end <= board["duration"]
    srt = open(result["srt"], encoding="utf-8").read()
    vtt = open(result["vtt"], encoding="utf-8").read()
    assert vtt.startswith("WEBVTT") and "-->" in srt
    assert board["scenes"][1]["caption"] in srt and board["scenes"][1]["caption"] in vtt


def test_without_espeak_subtitles_follow_the_scenes(tmp_path, quiet, monkeypatch, never, make_brief):
    real_which = shutil.which
    monkeypatch.setattr(audio_module.shutil, "which", lambda name: None if name == "espeak-ng" else real_which(name))
    board = build_storyboard(make_brief())
    result = render_audio(board, tmp_path, quiet, never)
    assert result["narration"] is False
    assert integrated_loudness(read_wav(result["wav"])) == pytest.approx(-16.0, abs=1.0)
    for scene, (start, end, text) in zip(board["scenes"], result["cues"], strict=True):
        assert text == scene["caption"]
        assert scene["start_frame"] / board["fps"] <= start < end <= board["duration"]


def test_second_run_returns_the_cached_artifact(tmp_path, quiet, monkeypatch, never, make_brief):
    board = build_storyboard(make_brief())
    first = render_audio(board, tmp_path, quiet, never)
    monkeypatch.setattr(audio_module, "music_bed", lambda *a: pytest.fail("audio was rendered again"))
    assert render_audio(board, tmp_path, quiet, never) == first


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng is not installed")
def test_text_that_starts_with_a_dash_is_spoken_not_taken_as_an_option(tmp_path, quiet, never, make_brief):
    """`--10% off sale` goes to espeak-ng after `--`: it is narrated, never read as an option."""
    samples = audio_module._speak("--10% off sale", "en", tmp_path / "line.wav", 160, never)
    assert samples.size > 48000 * 0.5 and np.abs(samples).max() > 0.01
    board = build_storyboard(make_brief(theme_id="--10% off sale", keywords_id=["-sale", "--price"],
                                        user_description_id="-", target_duration_id=6))
    result = render_audio(board, tmp_path / "brief", quiet, never)
    assert result["narration"] is True
    assert integrated_loudness(read_wav(result["wav"])) == pytest.approx(-16.0, abs=1.0)
