"""The user's own material and style in a storyboard and its stages (issue: briefs with `assets`,
`script`, `fit`, `voice`, `music`, `logo`, `subtitles`, `brand`, `preview`).

Planning (`plan_script`, `material_of`, `cut_preview`) is pure; the stages call `fetch` to get an
asset's bytes from storage into their work folder, `scene_background` for a scene drawn from an
image (or a frame of a clip), and `scene_layers` to drop or restyle the caption and add the logo.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

from .errors import PipelineError

PREVIEW_SECONDS = 10
#: Narration speed estimates for `fit: narration` (espeak-ng words per minute -> characters per second).
ZH_CHARS_PER_SECOND = 4.2
EN_WORDS_PER_MINUTE = 165
SCENE_PAD_SECONDS = 1.2
_WORD = re.compile(r"[A-Za-z0-9']+")


def spoken_seconds(text: str, speed: int | None, cjk: bool) -> float:
    """How long espeak-ng takes to say `text`, roughly."""
    if cjk:
        rate = ZH_CHARS_PER_SECOND * (speed or 175) / 175
        return len(re.sub(r"\s", "", text)) / rate
    return len(_WORD.findall(text)) * 60.0 / (speed or EN_WORDS_PER_MINUTE)


def plan_script(script: list[dict], theme: str, keywords: list[str], duration: float, fit: str,
                speed: int | None, is_cjk) -> tuple[list[tuple], list[float], float]:
    """(scene specs, frame weights, duration) for a brief with its own script."""
    specs, weights = [], []
    for i, scene in enumerate(script):
        heading = theme if i == 0 or not keywords else keywords[(i - 1) % len(keywords)]
        caption = scene.get("caption") or scene.get("narration") or ""
        narration = scene.get("narration") or caption
        kind = "title" if i == 0 else "keyword"
        specs.append((kind, heading, caption, f"{heading}/{i}", narration))
        weights.append(SCENE_PAD_SECONDS + spoken_seconds(narration, speed, is_cjk(narration)))
    if fit == "narration":
        duration = min(600.0, max(5.0, math.ceil(sum(weights))))
    return specs, weights, duration


def material_of(config: dict) -> dict:
    """What the stages need to know of the brief's extensions (part of the stage cache keys)."""
    material = {}
    for name in ("assets", "voice", "music", "logo", "subtitles", "brand"):
        if config.get(name) is not None:
            material[name] = config[name]
    return material


def assign_assets(scenes: list[dict], assets: list[str] | None) -> None:
    """Scene i shows asset i (cycling when there are fewer assets than scenes)."""
    if not assets:
        return
    for i, scene in enumerate(scenes):
        scene["asset"] = assets[i % len(assets)]


def cut_preview(board: dict, seconds: float = PREVIEW_SECONDS) -> None:
    """Keep the first `seconds` of a storyboard: same scenes and timing, the rest dropped."""
    fps = board["fps"]
    limit = int(round(seconds * fps))
    if board["total_frames"] <= limit:
        return
    kept = []
    for scene in board["scenes"]:
        if scene["start_frame"] >= limit:
            break
        scene["frames"] = min(scene["frames"], limit - scene["start_frame"])
        scene["heading_in"] = min(scene["heading_in"], max(0, scene["frames"] - board["text_in_frames"]))
        scene["caption_in"] = min(scene["caption_in"], max(0, scene["frames"] - board["text_in_frames"]))
        kept.append(scene)
    # A last piece shorter than a transition cannot cross-fade: give it to the scene before.
    if len(kept) > 1 and kept[-1]["frames"] < board["transition_frames"] * 2:
        tail = kept.pop()
        kept[-1]["frames"] += tail["frames"]
    board["scenes"] = kept
    board["total_frames"] = limit
    board["duration"] = limit / fps
    board["preview"] = True


# --- the stages' side: bytes from storage --------------------------------------------------------


def _storage():
    from webapp.config import load_config
    from webapp.storage import storage_for

    try:
        from flask import current_app, has_app_context

        if has_app_context():
            return storage_for(current_app.config)
    except ImportError:  # pragma: no cover - Flask is always installed with the worker
        pass
    config = load_config()
    if not config.get("STORAGE_URL"):
        config["STORAGE_URL"] = Path(config["MEDIA_ROOT"]).resolve().as_uri()
    return storage_for(config)


def fetch(asset_id: str, folder: Path) -> Path:
    """The asset's file in `folder` (downloaded once per folder)."""
    from webapp.storage import StorageError, asset_key

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob(f"asset-{asset_id}.*"))
    if found:
        return found[0]
    storage = _storage()
    prefix = asset_key(asset_id, "x")[:-1]
    keys = [k for k in storage.list(prefix) if k.rsplit("/", 1)[-1].startswith("original.")]
    if not keys:
        raise PipelineError(f"asset {asset_id} is no longer in the library", "visuals")
    dest = folder / f"asset-{asset_id}.{keys[0].rsplit('.', 1)[-1]}"
    try:
        storage.download(keys[0], dest)
    except StorageError as exc:
        raise PipelineError(f"asset {asset_id} cannot be read: {exc}", "visuals") from exc
    return dest


def _open_picture(path: Path):
    from PIL import Image, ImageOps

    if path.suffix.lower() in (".mp4", ".mov", ".webm"):
        from webapp.mediaprobe import poster_frame, probe

        info = probe(path)
        frame = path.with_name(f"frame-{path.stem}.png")  # not `asset-*`: fetch() looks for those
        if not frame.exists():
            poster_frame(path, frame, (info.get("duration") or 0) / 2, width=1920)
        path = frame
    with Image.open(path) as img:
        return ImageOps.exif_transpose(img).convert("RGB")


def cover(img, size: tuple[int, int]):
    """Scale and centre-crop a picture to fill `size` in any orientation."""
    from PIL import Image

    width, height = size
    scale = max(width / img.width, height / img.height)
    resized = img.resize((max(width, round(img.width * scale)), max(height, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    left = (resized.width - width) // 2
    top = (resized.height - height) // 2
    return resized.crop((left, top, left + width, top + height))


def scene_background(scene: dict, size: tuple[int, int], folder: Path):
    """The scene's background from its asset, or None for a procedural scene."""
    if not scene.get("asset"):
        return None
    import numpy as np
    from PIL import Image

    picture = cover(_open_picture(fetch(scene["asset"], folder)), size)
    # A darkening towards the bottom keeps captions readable; no pixel below blackdetect's floor.
    pixels = np.asarray(picture, dtype=np.float32)
    ramp = np.linspace(1.0, 0.72, size[1], dtype=np.float32)[:, None, None]
    pixels = np.maximum(pixels * ramp, 20.0)
    return Image.fromarray(pixels.astype(np.uint8))


def brand_rgb(color: str) -> list[int]:
    """`#RRGGBB` -> [r, g, b], the first colour of a scene's palette."""
    return [int(color[i:i + 2], 16) for i in (1, 3, 5)]


def scene_layers(scene: dict, board: dict, layers: list[tuple], folder: Path) -> list[tuple]:
    """The scene's text layers with the caption dropped when subtitles are not burned in, and the
    logo added in its corner (shown from the first frame, never animated)."""
    material = board.get("material") or {}
    subtitles = material.get("subtitles") or {}
    brand_font = (material.get("brand") or {}).get("font")
    if brand_font or set(subtitles) & {"size", "color", "outline", "position"}:
        layers = _styled_layers(scene, board, layers, subtitles, brand_font, folder)
    if subtitles.get("burn") is False and len(layers) > 1:
        layers = layers[:1]
    logo = material.get("logo")
    if logo and logo.get("asset"):
        layers = [*layers, _logo_layer(logo, board, folder)]
    return layers


def _logo_layer(logo: dict, board: dict, folder: Path) -> tuple:
    from PIL import Image

    width, height = board["width"], board["height"]
    with Image.open(fetch(logo["asset"], folder)) as img:
        mark = img.convert("RGBA")
    target_w = max(8, int(width * float(logo.get("scale") or 0.15)))
    target_h = max(8, round(mark.height * target_w / mark.width))
    if target_h > height * 0.3:
        target_h = int(height * 0.3)
        target_w = max(8, round(mark.width * target_h / mark.height))
    mark = mark.resize((target_w, target_h), Image.Resampling.LANCZOS)
    margin = max(4, int(min(width, height) * 0.04))
    corner = logo.get("corner") or "top-right"
    x = margin if corner.endswith("left") else width - target_w - margin
    y = margin if corner.startswith("top") else height - target_h - margin
    # start < -text_in: compose draws it still, from the first frame of every scene.
    return (mark, x, y, -10 * board["text_in_frames"], 0)


# --- audio: the brief's voice and music ----------------------------------------------------------


def voice_of(board: dict, lang: str, base_speed: int) -> tuple[str, int]:
    """(espeak-ng voice, words per minute) for a line: the brief's voice when its language fits."""
    voice = (board.get("material") or {}).get("voice") or {}
    name = voice.get("name")
    default = "cmn" if lang == "zh" else "en"
    if name and (name.startswith(("cmn", "yue", "zh")) == (lang == "zh")):
        default = name
    return default, int(voice.get("speed") or base_speed)


def music_volume(board: dict, peak: float) -> float:
    """The music bed's peak: the brief's volume (0..1, 0.3 being the house level) scales it."""
    music = (board.get("material") or {}).get("music") or {}
    volume = music.get("volume")
    return peak if volume is None else peak * float(volume) / 0.3


def music_track(board: dict, n_samples: int, rate: int, folder: Path):
    """The brief's music asset decoded to (n, 2) floats at `rate`, looped to length; None for the
    built-in bed."""
    import subprocess

    import numpy as np

    from webapp.mediaprobe import ffmpeg_exe

    music = (board.get("material") or {}).get("music") or {}
    if not music.get("asset") or n_samples <= 0:
        return None
    path = fetch(music["asset"], folder)
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
                             "-f", "s16le", "-ac", "2", "-ar", str(rate), "-"],
                            capture_output=True, timeout=300, check=False)
    if result.returncode != 0:
        raise PipelineError(f"cannot decode the music asset: {result.stderr.decode(errors='replace')[-300:]}",
                            "audio")
    samples = np.frombuffer(result.stdout, dtype="<i2").astype(np.float32).reshape(-1, 2) / np.float32(32767)
    if samples.size == 0:
        raise PipelineError("the music asset has no samples", "audio")
    track = np.resize(samples, (n_samples, 2))  # the asset repeated to length (L/R pairs stay whole)
    fade = min(int(1.0 * rate), n_samples // 4)
    ramp = np.linspace(0.0, 1.0, fade)
    track[:fade] *= ramp[:, None]
    track[n_samples - fade:] *= ramp[::-1, None]
    return track


# --- clips: moving scenes --------------------------------------------------------------------------

CLIP_EXTENSIONS = (".mp4", ".mov", ".webm")


def scene_clip(scene: dict, board: dict, index: int, out_dir: Path, assets_dir: Path, cancelled) -> str | None:
    """For a scene from a clip: the user's file itself, placed as `sceneNN-clip.<ext>` in `out_dir`
    (the chunks read it from there). None for other scenes.

    The clip is not re-encoded here: each chunk decodes it, loops it, brings it to the board's
    rate and covers the frame with it in its own filter graph (`clip_chain`), so a clip costs one
    decode and no extra encode. A heavy clip's proxy (4K, 60 fps or HDR made 1080p SDR at 30 fps
    once after its upload) is used instead when it covers the board: `sceneNN-proxy.mp4`."""
    if not scene.get("asset"):
        return None
    proxy = fetch_proxy(scene["asset"], board, assets_dir)
    source = proxy or fetch(scene["asset"], assets_dir)
    if source.suffix.lower() not in CLIP_EXTENSIONS:
        return None
    name = f"scene{index:02d}-proxy.mp4" if proxy else f"scene{index:02d}-clip{source.suffix.lower()}"
    try:
        os.link(source, out_dir / name)
    except OSError:
        shutil.copyfile(source, out_dir / name)
    return name


def fetch_proxy(asset_id: str, board: dict, folder: Path) -> Path | None:
    """The clip's proxy in `folder` when it has one that covers the board's frame without being
    enlarged (every board up to 1920x1080 in either orientation); None to read the original."""
    from webapp.mediaprobe import ProbeError, probe, video_stream
    from webapp.services.proxies import PROXY_NAME
    from webapp.storage import StorageError, asset_key

    dest = Path(folder) / f"asset-{asset_id}-proxy.mp4"
    if not dest.is_file():
        storage = _storage()
        key = asset_key(asset_id, PROXY_NAME)
        try:
            if not storage.exists(key):
                return None
            Path(folder).mkdir(parents=True, exist_ok=True)
            storage.download(key, dest)
        except StorageError:
            return None  # the original serves
    try:
        video = video_stream(probe(dest)) or {}
    except ProbeError:
        return None
    width, height = video.get("width") or 0, video.get("height") or 0
    if not width or max(board["width"] / width, board["height"] / height) > 1.001:
        return None
    return dest


def make_proxy(src: Path, dest: Path, width: int, height: int, fps: float | None, hdr: bool,
               seconds: float | None) -> None:
    """Write a clip's proxy (webapp/services/proxies.py): its picture upright (as ffmpeg turns it
    on decoding), shrunk to `proxy_size`, at most PROXY_FPS, in SDR BT.709, as H.264 at a quality
    above any render's (CRF 16) with a keyframe every second for the chunks' seeks; no sound (a
    render mutes the clip's own)."""
    from webapp.mediaprobe import TO_SDR, run_ffmpeg
    from webapp.services.proxies import PROXY_FPS, proxy_size

    out_w, out_h = proxy_size(width, height)
    rate = PROXY_FPS if (fps or 0) > PROXY_FPS + 0.5 else None
    chain = [f"fps={rate}"] if rate else []
    chain.append(f"scale={out_w}:{out_h}:flags=bicubic")
    if hdr:
        chain.append(TO_SDR)
    chain.append("setsar=1,format=yuv420p")
    gop = round(rate or fps or PROXY_FPS)
    run_ffmpeg(["-i", str(src), "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", ",".join(chain),
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-g", str(gop), "-pix_fmt", "yuv420p",
                "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
                "-movflags", "+faststart", str(dest)], timeout=max(600, int(6 * (seconds or 0))))


def clip_facts(path: Path) -> dict:
    """What the chunks need to know of a clip scene's file, for its manifest entry:

    * `clip_loop`: to start a piece mid-clip, how long one pass of its picture lasts as
      `-stream_loop` plays it (only the video stream is used, so ffmpeg loops after the video's own
      duration) and its frame rate; empty when the file does not say (a container duration may
      include a longer sound track);
    * `clip_hdr`: true for HDR pictures (a phone's HLG, HDR10's PQ), which the chunks bring to SDR."""
    from webapp.mediaprobe import ProbeError, audio_stream, is_hdr, probe, video_stream

    try:
        info = probe(path)
    except ProbeError:
        return {"clip_loop": {}}
    video = video_stream(info) or {}
    facts: dict = {"clip_loop": {}}
    if is_hdr(video):
        facts["clip_hdr"] = True
    seconds = video.get("duration") or (None if audio_stream(info) else info.get("duration"))
    if seconds and seconds > 0 and video.get("fps"):
        facts["clip_loop"] = {"seconds": float(seconds), "rate": float(video["fps"])}
    return facts


def _clip_seek(offset: int, fps: int, loop: dict | None) -> tuple[float, int] | None:
    """(input seek in seconds, board frames of lead-in) for a piece starting at scene frame
    `offset`, or None to decode from the clip's start.

    The seek lands `lead` board frames before the piece's first frame, where the loop is at that
    moment, and `fps` (anchored by start_time) drops the lead-in: the frames are the same as when
    the looped clip is decoded from its start, with the same rounding of the rate conversion,
    because the seek moves the clip's times by whole board frames plus whole passes."""
    if not loop or offset <= 0:
        return None
    lead = math.ceil(fps / loop["rate"]) + 1  # the clip frame showing at the piece's first frame
    seek = math.fmod(offset / fps, loop["seconds"]) - lead / fps
    return (seek, lead) if seek > 0 else None


def clip_input(offset: int, fps: int, loop: dict | None) -> list[str]:
    """ffmpeg input options of a clip scene's piece starting at scene frame `offset`: loop the clip
    for as long as the scene needs, and start just before where the loop is at that frame.

    Seeking the input (rather than trimming the frames before the piece) spares decoding and
    filtering the scene's earlier frames only to drop them, in every chunk but the scene's first."""
    seek = _clip_seek(offset, fps, loop)
    return ["-stream_loop", "-1", *(["-ss", f"{seek[0]:.6f}"] if seek else [])]


def clip_chain(input_index: int, offset: int, count: int, board: dict, label: str, loop: dict | None = None,
               hdr: bool = False) -> str:
    """Filter chain of a clip scene's piece: the looped clip at the board's rate, its frames
    offset..offset+count, scaled and centre-cropped to cover the frame (and, when `hdr`, brought
    to SDR at that size), sound left out. `loop` (from `clip_facts`) is what `clip_input` seeked with."""
    from webapp.mediaprobe import TO_SDR

    width, height, fps = board["width"], board["height"], board["fps"]
    seek = _clip_seek(offset, fps, loop)
    rate = f"fps={fps}:start_time={seek[1] / fps:.6f}" if seek else f"fps={fps}"
    first = 0 if seek else offset
    tone = f"{TO_SDR}," if hdr else ""
    return (f"[{input_index}:v]{rate},trim=start_frame={first}:end_frame={first + count},"
            f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=bicubic,"
            f"crop={width}:{height},{tone}setsar=1,settb=expr=1/{fps},setpts=N,format=yuv420p[{label}b0]")


# --- text style: the brand's font, the subtitles' size, colour, outline and position ---------------


def _chain(brand_font: str | None, folder: Path, bold: bool) -> tuple:
    from .fonts import Face, font_chain

    chain = font_chain(bold=bold)
    if brand_font:
        chain = (Face(str(fetch(brand_font, folder)), 0), *chain)
    return chain


def _outlined(img, width: int):
    """A text layer with a black outline `width` pixels thick around its glyphs."""
    from PIL import Image, ImageFilter

    if width <= 0:
        return img
    alpha = img.getchannel("A").point(lambda v: 255 if v > 128 else 0)
    grown = alpha.filter(ImageFilter.MaxFilter(2 * width + 1))
    pad = Image.new("RGBA", img.size, (0, 0, 0, 0))
    pad.putalpha(grown)
    return Image.alpha_composite(pad, img)


def _styled_layers(scene: dict, board: dict, layers: list[tuple], subtitles: dict, brand_font: str | None,
                   folder: Path) -> list[tuple]:
    """Heading in the brand font; caption in the brand font and the subtitles' style."""
    from .images import safe_box
    from .layout import draw_text, fit_text

    width, height = board["width"], board["height"]
    left, top, right, bottom = safe_box(width, height)
    styled = list(layers)
    if brand_font and styled:
        img, _x, y, start, slide = styled[0]
        chain = _chain(brand_font, folder, bold=True)
        fitted = fit_text(scene["heading"], chain, right - left, max(img.height, 12),
                          max_size=max(12, int(img.height * 0.7)), min_size=10, max_lines=2)
        head = draw_text(fitted, chain)
        styled[0] = (head, (width - head.width) // 2, y, start, slide)
    if len(styled) > 1:
        img, _x, y, start, slide = styled[1]
        chain = _chain(brand_font, folder, bold=False)
        size = int(subtitles.get("size") or max(10, int(img.height * 0.35)))
        size = max(10, min(size, int(height * 0.2)))
        color = brand_rgb(subtitles["color"]) if subtitles.get("color") else [245, 245, 240]
        outline = int(subtitles.get("outline") or 0)
        fitted = fit_text(scene["caption"], chain, right - left, int((bottom - top) * 0.4),
                          max_size=size, min_size=min(size, max(10, size // 2)), max_lines=3)
        caption = _outlined(draw_text(fitted, chain, color=tuple(color), shadow=outline == 0), outline)
        position = subtitles.get("position") or "bottom"
        if position == "top":
            y = top + slide
        elif position == "middle":
            y = (height - caption.height) // 2
        else:
            y = bottom - slide - caption.height
        styled[1] = (caption, (width - caption.width) // 2, y, start, slide)
    return styled


def inside_asset_scenes(board: dict, start: float, duration: float) -> bool:
    """True when a stretch of the video lies within scenes drawn from the user's material: a still
    picture or a static shot may legitimately not move, and a dark shot or a fade in a clip may be
    black (the quality gate lets those pass)."""
    fps = board["fps"]
    spans = []
    for scene in board["scenes"]:
        if scene.get("asset"):
            a = scene["start_frame"] / fps
            b = (scene["start_frame"] + scene["frames"] + board["transition_frames"]) / fps
            if spans and a <= spans[-1][1] + 1e-6:
                spans[-1] = (spans[-1][0], max(spans[-1][1], b))
            else:
                spans.append((a, b))
    end = min(start + duration, board["total_frames"] / fps)  # a freeze to the end has no duration
    return any(a - 0.05 <= start and end <= b + 0.05 for a, b in spans)
