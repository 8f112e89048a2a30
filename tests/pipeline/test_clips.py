"""The MoviePy work: soundtrack composition (placement, ducking, exact length) and its use by the audio stage."""

import shutil

import moviepy
import numpy as np
import pytest

from worker.pipeline import audio as audio_module
from worker.pipeline.audio import read_wav, render_audio
from worker.pipeline.clips import DUCK_LEAD, DUCK_RAMP, mix_soundtrack
from worker.pipeline.loudness import RATE
from worker.pipeline.storyboard import build_storyboard

# A length for which MoviePy's own write_audiofile drops the last sample (int(fps * duration)).
ODD_LENGTH = 240002


def line_with_edges(length: int) -> np.ndarray:
    """A narration stand-in: full scale on its first and last sample, silent in between."""
    samples = np.zeros(length)
    samples[0], samples[-1] = 1.0, -0.5
    return samples


def test_lines_land_on_their_start_sample_and_keep_their_last_sample():
    music = np.zeros((ODD_LENGTH, 2))
    lines = [(12345, line_with_edges(30000)), (100001, line_with_edges(48000))]
    out = mix_soundtrack(music, lines, music_peak=0.35, voice_peak=0.7, duck=0.28)
    assert out.shape == (ODD_LENGTH, 2)
    for start, samples in lines:
        end = start + samples.size - 1
        assert out[start] == pytest.approx([0.7, 0.7])
        assert out[end] == pytest.approx([-0.35, -0.35])
        assert not out[start - 1].any() and not out[end + 1].any()
    assert np.count_nonzero(out[:, 0]) == 4


def test_line_running_past_the_end_is_cut_and_the_length_stays_exact():
    music = np.full((RATE, 2), 0.1)
    out = mix_soundtrack(music, [(RATE - 100, np.ones(5000))], music_peak=0.35, voice_peak=0.7, duck=0.28)
    assert out.shape == (RATE, 2)
    assert out[-1, 0] > 0.7  # the voice plays up to the very last sample


def test_music_is_ducked_under_the_voice_with_smooth_ramps():
    music = np.full((4 * RATE, 2), 0.5)
    start, length = 2 * RATE, RATE
    voice = np.zeros(length)
    voice[length // 2] = 1.0  # one click in the middle, so the bed can be read everywhere else
    bed = mix_soundtrack(music, [(start, voice)], music_peak=0.35, voice_peak=0.7, duck=0.28)[:, 0]
    quiet_from = int((start / RATE - DUCK_LEAD + DUCK_RAMP / 2) * RATE)
    loud_until = int((start / RATE - DUCK_LEAD - DUCK_RAMP / 2) * RATE)
    assert bed[:loud_until] == pytest.approx(0.35)
    assert bed[quiet_from:start + length // 2] == pytest.approx(0.35 * 0.28)
    ramp = bed[loud_until:quiet_from]
    assert np.all(np.diff(ramp) <= 1e-12) and np.abs(np.diff(ramp)).max() < 0.35 / (0.2 * RATE)
    after = int(((start + length) / RATE + DUCK_LEAD + DUCK_RAMP / 2) * RATE) + 1
    assert bed[after:] == pytest.approx(0.35)


def test_audio_stage_composes_the_track_with_moviepy(tmp_path, monkeypatch, quiet, never, make_brief):
    composites = []

    class Spy(moviepy.CompositeAudioClip):
        def __init__(self, clips):
            composites.append(len(clips))
            super().__init__(clips)

    monkeypatch.setattr(moviepy, "CompositeAudioClip", Spy)
    board = build_storyboard(make_brief())
    result = render_audio(board, tmp_path, quiet, never)
    narrated = 1 + len(board["scenes"]) if result["narration"] else 1
    assert composites == [narrated]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_narration_starts_at_each_scene_text_entrance(tmp_path, monkeypatch, quiet, never, make_brief):
    # Without the music bed the track is the voice alone: silence until each line starts.
    monkeypatch.setattr(audio_module, "music_bed", lambda board, n: np.zeros((n, 2)))
    board = build_storyboard(make_brief(target_duration_id=8))
    result = render_audio(board, tmp_path, quiet, never)
    samples = read_wav(result["wav"])
    assert samples.shape == (round(board["duration"] * RATE), 2)
    fps, loud = board["fps"], np.abs(samples[:, 0]) > 1e-3
    for scene, (cue_start, _end, _text) in zip(board["scenes"], result["cues"], strict=True):
        entrance = (scene["start_frame"] + scene["heading_in"]) / fps
        assert cue_start == pytest.approx(entrance, abs=0.001)  # cues are kept to the millisecond
        begin, stop = int(scene["start_frame"] / fps * RATE), int(entrance * RATE)
        assert not loud[begin:stop].any(), "voice before the scene's text entrance"
        first = stop + int(np.argmax(loud[stop:]))
        assert first - stop < 0.2 * RATE, "the line does not start at the entrance"
