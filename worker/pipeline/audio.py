"""Stage "audio": synthesized music bed, espeak-ng narration, ducking, -16 LUFS, the AAC track, SRT/WebVTT.

The music and the narration lines are composed into one track by MoviePy (clips.mix_soundtrack);
this module makes the sources, normalizes the loudness and writes the files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from . import material as own_material
from .cache import publish_dir, remove_quietly, stage_dir
from .clips import mix_soundtrack
from .errors import Cancelled, PipelineError
from .loudness import RATE, integrated_loudness
from .proc import allotted_cores, die_with_parent, ffmpeg_exe, run_child, run_ffmpeg
from .storyboard import is_cjk_text

TARGET_LUFS = -16.0
PEAK_CEILING = 0.85  # the limiter's knee; peaks stay under PEAK_MAX (about -0.3 dBFS)
PEAK_MAX = 0.97
DUCK_GAIN = 0.28  # music level under narration (about -11 dB)
MUSIC_PEAK, VOICE_PEAK = 0.35, 0.7  # pre-normalization peaks: the voice sits well above the bed
NARRATION_GAP = 0.15  # seconds kept free before the end of a scene

# Chord progressions in semitones above the key root (triads), picked by the theme.
_PROGRESSIONS = {
    "bright": [(0, 4, 7), (7, 11, 14), (9, 12, 16), (5, 9, 12)],  # I V vi IV
    "warm": [(9, 12, 16), (5, 9, 12), (0, 4, 7), (7, 11, 14)],  # vi IV I V
    "calm": [(0, 4, 7), (5, 9, 12), (0, 4, 7), (7, 11, 14)],  # I IV I V
}
_WARM_WORDS = ("故事", "传承", "公益", "story", "heritage", "温", "情")
_CALM_WORDS = ("教程", "tutorial", "onboarding", "旅游", "travel", "环保")


def _theme_style(board: dict) -> tuple[str, float, int]:
    """(progression, tempo bpm, key root as MIDI note) from the theme."""
    theme = board["theme"].lower()
    digest = int(hashlib.sha256(board["theme"].encode("utf-8")).hexdigest()[:8], 16)
    if any(w in theme for w in _WARM_WORDS):
        style, tempo = "warm", 72.0
    elif any(w in theme for w in _CALM_WORDS):
        style, tempo = "calm", 84.0
    else:
        style, tempo = "bright", 100.0
    return style, tempo + digest % 9, 45 + digest % 7


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def music_bed(board: dict, n_samples: int) -> np.ndarray:
    """Stereo pad + bass + soft plucks following a theme-shaped chord progression."""
    style, tempo, root = _theme_style(board)
    rng = np.random.default_rng(board["seed"])
    beat = 60.0 / tempo
    chord_len = int(4 * beat * RATE)
    out = np.zeros((n_samples, 2), dtype=np.float32)  # computed in float64 per chord, kept in float32
    progression = _PROGRESSIONS[style]
    release = int(0.8 * RATE)
    for k, start in enumerate(range(0, n_samples, chord_len)):
        chord = progression[k % len(progression)]
        length = min(chord_len + release, n_samples - start)
        t = np.arange(length) / RATE
        env = np.minimum(1.0, t / 0.6) * np.clip((chord_len + release - t * RATE) / release, 0.0, 1.0)
        for ch, detune in enumerate((-0.06, 0.06)):
            pad = np.zeros(length)
            for note in chord:
                freq = _midi_hz(root + 12 + note + detune)
                pad += np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 2 * freq * t + 0.5)
            bass = 0.9 * np.sin(2 * np.pi * _midi_hz(root - 12 + chord[0]) * t)
            out[start:start + length, ch] += env * (0.12 * pad + 0.25 * bass)
        # Plucked arpeggio on eighth notes for motion; velocity varies with the seed.
        if style != "calm" or k % 2:
            for step in range(8):
                at = start + int(step * beat / 2 * RATE)
                if at >= n_samples:
                    break
                span = min(int(0.7 * RATE), n_samples - at)
                tt = np.arange(span) / RATE
                note = root + 24 + chord[step % 3] + (12 if step in (3, 7) else 0)
                pluck = np.sin(2 * np.pi * _midi_hz(note) * tt) * np.exp(-tt * 7) * (0.05 + 0.03 * rng.random())
                pan = 0.3 + 0.4 * (step % 2)
                out[at:at + span, 0] += pluck * (1 - pan)
                out[at:at + span, 1] += pluck * pan
    fade = min(int(1.0 * RATE), n_samples // 4)
    ramp = np.linspace(0.0, 1.0, fade)
    out[:fade] *= ramp[:, None]
    out[n_samples - fade:] *= ramp[::-1, None]
    return out


def _read_speech(path: Path) -> np.ndarray:
    """Decode and resample a narration wav to 48 kHz mono float samples with ffmpeg."""
    result = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
         "-f", "s16le", "-ac", "1", "-ar", str(RATE), "-"],
        capture_output=True, timeout=60, check=False, preexec_fn=die_with_parent(),
    )
    if result.returncode != 0:
        raise PipelineError(f"cannot decode narration: {result.stderr.decode(errors='replace')[-300:]}", "audio")
    return np.frombuffer(result.stdout, dtype="<i2").astype(np.float64) / 32767


def _speak(text: str, lang: str, dest: Path, speed: int, cancelled, voice: str | None = None) -> np.ndarray:
    voice = voice or ("cmn" if lang == "zh" else "en")
    run_child(["espeak-ng", "-v", voice, "-s", str(speed), "-a", "120", "-w", str(dest), "--", text],
              "audio", cancelled, partial=[dest])
    return _read_speech(dest)


def _narrate(board: dict, i: int, tmp: Path, cancelled) -> dict:
    """Speak scene `i`'s narration so that it fits the scene: {start, samples, text}."""
    fps, scene = board["fps"], board["scenes"][i]
    if cancelled():
        raise Cancelled("audio cancelled")
    start = (scene["start_frame"] + scene["heading_in"]) / fps
    room = (scene["start_frame"] + scene["frames"]) / fps - NARRATION_GAP - start
    text = scene["narration"]
    lang = "zh" if is_cjk_text(text) else "en"
    voice, base_speed = own_material.voice_of(board, lang, 175 if lang == "zh" else 165)
    dest = tmp / f"speech{i:02d}.wav"
    speech = _speak(text, lang, dest, base_speed, cancelled, voice)
    if speech.size / RATE > room:
        faster = min(450, int(base_speed * (speech.size / RATE) / room * 1.05) + 1)
        speech = _speak(text, lang, dest, faster, cancelled, voice)
    limit = max(0, int(room * RATE))
    if speech.size > limit:
        fade = min(int(0.15 * RATE), limit)
        speech = speech[:limit].copy()
        if fade:
            speech[limit - fade:] *= np.linspace(1.0, 0.0, fade)
    return {"start": start, "samples": speech, "text": scene["caption"]}


def narration(board: dict, tmp: Path, cancelled, progress) -> list[dict]:
    """Speak each scene's narration so it fits the scene; [{start, samples, text}] in scene order.

    The scenes are spoken side by side, one espeak-ng (and its decoding ffmpeg) per core this
    process may use: each line is independent, and a stage that waits on one child at a time
    leaves the other cores idle."""
    count = len(board["scenes"])
    if not count:
        return []
    progress(0.1, f"Narrating {count} scenes")
    with ThreadPoolExecutor(max_workers=max(1, min(allotted_cores(), count))) as pool:
        futures = [pool.submit(_narrate, board, i, tmp, cancelled) for i in range(count)]
        try:
            for done, _ in enumerate(as_completed(futures), start=1):
                progress(0.1 + 0.6 * done / count, f"Narrated scene {done}/{count}")
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()


#: Samples per slice when a whole track is changed in place (keeps the temporaries small).
SLICE = 1 << 20


def normalize(mix: np.ndarray, target: float = TARGET_LUFS) -> tuple[np.ndarray, float]:
    """Gain to `target` LUFS with a soft peak limiter, in place, slice by slice (a 10-minute
    track's temporaries stay a few megabytes); returns (samples, measured LUFS)."""
    headroom = PEAK_MAX - PEAK_CEILING
    measured = integrated_loudness(mix)
    for _ in range(4):
        gain = 10 ** ((target - measured) / 20)
        for start in range(0, mix.shape[0], SLICE):
            part = mix[start:start + SLICE]
            part *= gain
            over = np.abs(part) > PEAK_CEILING
            if over.any():
                # Soft knee above PEAK_CEILING: tanh keeps peaks under PEAK_MAX and changes little else.
                excess = (np.abs(part[over]) - PEAK_CEILING) / headroom
                part[over] = np.sign(part[over]) * (PEAK_CEILING + headroom * np.tanh(excess))
        measured = integrated_loudness(mix)
        if abs(measured - target) < 0.2:
            break
    return mix, measured


def _timestamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def subtitles(cues: list[tuple[float, float, str]]) -> tuple[str, str]:
    """SRT and WebVTT documents for (start, end, text) cues."""
    srt = "".join(f"{i}\n{_timestamp(a, ',')} --> {_timestamp(b, ',')}\n{text}\n\n"
                  for i, (a, b, text) in enumerate(cues, 1))
    vtt = "WEBVTT\n\n" + "".join(f"{i}\n{_timestamp(a, '.')} --> {_timestamp(b, '.')}\n{text}\n\n"
                                  for i, (a, b, text) in enumerate(cues, 1))
    return srt, vtt


def write_wav(path: Path, samples: np.ndarray) -> None:
    """16-bit PCM stereo at 48 kHz, written slice by slice."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        for start in range(0, samples.shape[0], SLICE):
            part = np.clip(samples[start:start + SLICE], -1.0, 1.0) * 32767
            out.writeframes(part.round().astype("<i2").tobytes())


def read_wav(path: Path) -> np.ndarray:
    """Float samples (n, channels) of a 16-bit PCM wav."""
    with wave.open(str(path), "rb") as src:
        data = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2")
        return data.reshape(-1, src.getnchannels()).astype(np.float64) / 32767


def aac_args(board: dict) -> list[str]:
    """ffmpeg output options of the delivered AAC track."""
    return ["-c:a", "aac", "-b:a", board["audio_bitrate"], "-ar", str(RATE), "-ac", "2"]


def render_audio(board: dict, work_dir: Path, progress, cancelled) -> dict:
    """Mixed track (wav, and encoded as the video's AAC track), subtitles (srt, vtt) and loudness;
    cached by storyboard content."""
    final, cached, tmp = stage_dir(board, "audio", work_dir, "audio.json")
    if cached is not None:
        progress(1.0, "Audio ready (cached)")
        return _with_paths(cached, final)
    try:
        duration = board["total_frames"] / board["fps"]
        n_samples = int(round(duration * RATE))
        progress(0.0, "Composing music")
        music = own_material.music_track(board, n_samples, RATE, tmp)
        if music is None:
            music = music_bed(board, n_samples)
        use_voice = shutil.which("espeak-ng") is not None
        lines = narration(board, tmp, cancelled, progress) if use_voice else []
        placed, cues = [], []
        for line in lines:
            a = int(line["start"] * RATE)
            b = min(n_samples, a + line["samples"].size)
            if b <= a:
                continue
            placed.append((a, line["samples"]))
            cues.append((a / RATE, min(b / RATE + 0.3, duration - 0.05), line["text"]))
        if not lines:
            fps = board["fps"]
            for scene in board["scenes"]:
                start = (scene["start_frame"] + scene["heading_in"]) / fps
                end = min((scene["start_frame"] + scene["frames"]) / fps - 0.1, duration - 0.05)
                cues.append((start, end, scene["caption"]))
        if cancelled():
            raise Cancelled("audio cancelled")
        progress(0.75, "Mixing and normalizing loudness")
        mix = mix_soundtrack(music, placed, music_peak=own_material.music_volume(board, MUSIC_PEAK),
                             voice_peak=VOICE_PEAK, duck=DUCK_GAIN)
        narrated = bool(placed)
        del music, placed, lines  # the mix holds them now; a long track needs the memory back
        mix, lufs = normalize(mix)
        write_wav(tmp / "mix.wav", mix)
        # Encoded here, beside the video's render, so the assembly only copies it into the MP4.
        progress(0.9, "Encoding the soundtrack")
        run_ffmpeg(["-i", str(tmp / "mix.wav"), *aac_args(board), "-f", "mp4", str(tmp / "mix.m4a")], "audio", cancelled)
        srt, vtt = subtitles(cues)
        (tmp / "subtitles.srt").write_text(srt, encoding="utf-8")
        (tmp / "subtitles.vtt").write_text(vtt, encoding="utf-8")
        for stale in [*tmp.glob("speech*.wav"), *tmp.glob("asset-*")]:
            stale.unlink()
        meta = {"lufs": round(lufs, 2), "narration": narrated, "duration": n_samples / RATE,
                "cues": [[round(a, 3), round(b, 3), text] for a, b, text in cues]}
        (tmp / "audio.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        publish_dir(tmp, final)
    except (PipelineError, Cancelled):
        raise
    except OSError as exc:
        raise PipelineError(f"audio failed: {exc}", "audio") from exc
    finally:
        remove_quietly(tmp)
    progress(1.0, "Audio ready")
    return _with_paths(json.loads((final / "audio.json").read_text(encoding="utf-8")), final)


def _with_paths(meta: dict, folder: Path) -> dict:
    return {**meta, "wav": str(folder / "mix.wav"), "aac": str(folder / "mix.m4a"),
            "srt": str(folder / "subtitles.srt"),
            "vtt": str(folder / "subtitles.vtt")}
