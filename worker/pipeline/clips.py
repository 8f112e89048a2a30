"""The MoviePy side of the pipeline: the soundtrack composition and the poster frame.

MoviePy is the composition library of the product, and on every render it does two jobs:

* **Soundtrack** (stage "audio"): the music bed is an `AudioArrayClip`, each narration line is an
  `AudioArrayClip` placed on the timeline with `with_start` at its scene's text entrance, the
  levels are set with `with_volume_scaled`, the music is ducked under the voice by a `transform`
  (a piecewise-linear gain with 0.25 s ramps) and everything is summed by a
  `CompositeAudioClip`. The composite is evaluated at exact sample times, chunk by chunk, so the
  track has exactly `total_frames / fps * 48000` samples and each line starts on its sample.
  Narration is decoded by ffmpeg to numpy before MoviePy sees it: `AudioFileClip` takes a
  line's length from ffmpeg's duration rounded to 10 ms, so the end of an espeak-ng WAV is cut
  or padded. `write_audiofile` writes int(fps * duration) samples, one short for some lengths
  (240002 samples at 48 kHz come out as 240001), so the loudness normalization (BS.1770 in
  numpy, -16 LUFS) and the sample-exact WAV writer stay ours.
* **Poster** (stage "assemble"): the poster and thumbnail are a frame of the finished MP4 read
  with `VideoFileClip(...).get_frame`, i.e. exactly what the viewer sees at that moment.

The pixels of the video do not go through MoviePy. Measured on this 2-core machine, MoviePy 2.2.1
compositing 10 s of 1080p30 frame by frame in Python (zoom, cross-fades, caption) took 25-53 s;
one ffmpeg filter graph over the same stills took 3.0 s. So compose.py renders each chunk as one
ffmpeg filter graph and MoviePy is kept where it is fast: audio arrays and single frames.
Nothing here writes to the working directory: MoviePy gets explicit paths or none at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import PipelineError
from .loudness import RATE

RENDER_BLOCK = RATE  # samples evaluated per MoviePy call: one second keeps memory flat
DUCK_LEAD = 0.15  # seconds the music starts ducking before the voice (and stays after)
DUCK_RAMP = 0.25  # seconds of each linear gain ramp, centred on the lead edge


def duck_gain(spans: Sequence[tuple[float, float]], duck: float):
    """Gain of time (seconds, scalar or array): `duck` under the spans, 1.0 elsewhere, linear ramps."""
    half = DUCK_RAMP / 2
    shapes = []
    for start, end in spans:
        a, b = start - DUCK_LEAD, end + DUCK_LEAD
        # A plateau shorter than the ramps still reaches full depth in its middle.
        mid = (a + b) / 2
        rise, fall = min(a + half, mid), max(b - half, mid)
        shapes.append(([a - half, rise, fall, b + half], [0.0, 1.0, 1.0, 0.0]))

    def gain(t):
        active = np.zeros(np.shape(t))
        for knots, values in shapes:
            active = np.maximum(active, np.interp(t, knots, values))
        return 1.0 - (1.0 - duck) * active

    return gain


def mix_soundtrack(music: np.ndarray, lines: Sequence[tuple[int, np.ndarray]], *, music_peak: float,
                   voice_peak: float, duck: float) -> np.ndarray:
    """Compose music (n, 2) and narration [(start sample, mono samples)] with MoviePy; (n, 2) floats.

    The music is scaled to `music_peak` and ducked to `duck` under each line, the voice to
    `voice_peak` (lines never overlap, so the loudest line sets it). A line is cut at the end of
    the track; the result has exactly as many samples as `music`.
    """
    from moviepy import AudioArrayClip, CompositeAudioClip

    n_samples = music.shape[0]
    if n_samples == 0:
        return np.zeros((0, 2))
    loudest_music = max(float(music.max()), -float(music.min())) or 1.0  # no full-size temporary
    bed = AudioArrayClip(music, fps=RATE).with_volume_scaled(music_peak / loudest_music)
    layers = [bed]
    placed = [(a, s) for a, s in lines if s.size and 0 <= a < n_samples]
    if placed:
        loudest_voice = max(float(np.abs(s).max()) for _, s in placed) or 1.0
        spans = [(a / RATE, min(n_samples, a + s.size) / RATE) for a, s in placed]
        gain = duck_gain(spans, duck)

        def ducked(get_frame, t):
            g = gain(t)
            return get_frame(t) * (g[:, None] if np.ndim(g) else g)

        layers[0] = bed.transform(ducked)
        for a, samples in placed:
            stereo = np.repeat(samples[:, None], 2, axis=1)
            layers.append(AudioArrayClip(stereo, fps=RATE).with_start(a / RATE)
                          .with_volume_scaled(voice_peak / loudest_voice))
    track = CompositeAudioClip(layers).with_duration(n_samples / RATE)
    out = np.empty((n_samples, 2), dtype=np.float32)  # float32: half the memory of a long track
    for k in range(0, n_samples, RENDER_BLOCK):
        times = np.arange(k, min(n_samples, k + RENDER_BLOCK)) / RATE
        out[k:k + times.size] = track.to_soundarray(tt=times)
    return out


def grab_frame(video: Path, seconds: float) -> np.ndarray:
    """RGB frame (h, w, 3) of `video` at `seconds`, read through MoviePy's VideoFileClip."""
    from moviepy import VideoFileClip

    try:
        clip = VideoFileClip(str(video), audio=False)
    except (OSError, KeyError, IndexError) as exc:
        raise PipelineError(f"MoviePy cannot open {Path(video).name}: {exc}", "assemble") from exc
    try:
        # Stay one frame clear of the end: the reader has no frame at t == duration.
        at = min(max(0.0, seconds), max(0.0, clip.duration - 1.0 / clip.fps))
        return clip.get_frame(at)
    finally:
        clip.close()
