"""Stage "visuals": procedural background art and text layers per scene, as still PNGs."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from . import material as own_material
from .cache import publish_dir, remove_quietly, stage_dir
from .errors import Cancelled
from .fonts import font_chain
from .layout import draw_text, fit_text

SAFE_MARGIN = 0.10  # title-safe margin on every side, as a fraction of the frame
MAX_ZOOM = 1.07  # backgrounds are drawn this much larger than the frame: the camera only zooms down


def safe_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the title-safe area."""
    mx, my = int(math.ceil(width * SAFE_MARGIN)), int(math.ceil(height * SAFE_MARGIN))
    return mx, my, width - mx, height - my


def background_size(width: int, height: int) -> tuple[int, int]:
    """Size of the background still (even sides, MAX_ZOOM times the frame)."""
    return 2 * math.ceil(width * MAX_ZOOM / 2), 2 * math.ceil(height * MAX_ZOOM / 2)


def _draw_motif(motif: str, size: tuple[int, int], colours: list, rng: random.Random) -> Image.Image:
    width, height = size
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    unit = min(width, height)
    line = max(1, unit // 300)
    light = tuple(min(255, c + 90) for c in colours[2])
    if motif == "orbits":
        cx, cy = width * rng.uniform(0.55, 0.8), height * rng.uniform(0.3, 0.6)
        for k in range(9):
            r = unit * (0.12 + 0.09 * k)
            draw.ellipse([cx - r * 1.3, cy - r, cx + r * 1.3, cy + r], outline=light + (70 - 6 * k,), width=line)
            angle = rng.uniform(0, 2 * math.pi)
            px, py = cx + 1.3 * r * math.cos(angle), cy + r * math.sin(angle)
            dot = unit * 0.012
            draw.ellipse([px - dot, py - dot, px + dot, py + dot], fill=light + (170,))
    elif motif == "waves":
        for k in range(14):
            amp, phase = height * rng.uniform(0.02, 0.07), rng.uniform(0, 6.3)
            base, freq = height * (0.2 + 0.045 * k), rng.uniform(1.0, 2.5)
            pts = [(x, base + amp * math.sin(phase + freq * 2 * math.pi * x / width)) for x in range(0, width + 8, 8)]
            draw.line(pts, fill=light + (40 + 4 * k,), width=line * 2)
    elif motif == "grid":
        step = unit / rng.choice([7, 9, 11])
        for i in range(int(width / step) + 2):
            draw.line([(i * step, 0), (i * step, height)], fill=light + (34,), width=line)
        for j in range(int(height / step) + 2):
            draw.line([(0, j * step), (width, j * step)], fill=light + (34,), width=line)
        for _ in range(40):
            x, y = rng.randrange(int(width / step) + 1) * step, rng.randrange(int(height / step) + 1) * step
            dot = unit * rng.uniform(0.006, 0.014)
            draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=light + (190,))
    elif motif == "facets":
        for _ in range(26):
            cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), unit * rng.uniform(0.08, 0.3)
            pts = [(cx + r * math.cos(a), cy + r * math.sin(a))
                   for a in sorted(rng.uniform(0, 2 * math.pi) for _ in range(3))]
            colour = rng.choice(colours[1:]) + [rng.randint(26, 70)]
            draw.polygon(pts, fill=tuple(colour), outline=light + (60,))
    elif motif == "bokeh":
        for _ in range(60):
            cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), unit * rng.uniform(0.015, 0.09)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=light + (rng.randint(20, 70),))
    else:  # rays
        cx, cy = width * rng.uniform(0.2, 0.8), -height * 0.1
        for k in range(32):
            angle = math.pi * (0.05 + 0.9 * k / 31) + rng.uniform(-0.02, 0.02)
            ex, ey = cx + 3 * unit * math.cos(angle), cy + 3 * unit * math.sin(angle)
            draw.line([(cx, cy), (ex, ey)], fill=light + (rng.randint(18, 50),), width=line * rng.randint(2, 6))
    blur = 2.5 if motif in ("bokeh", "facets") else 0.8
    return layer.filter(ImageFilter.GaussianBlur(unit * blur / 300))


def render_background(scene: dict, size: tuple[int, int]) -> Image.Image:
    """Gradient, glow, motif and vignette for one scene, at `size`."""
    width, height = size
    rng = random.Random(scene["art_seed"])
    colours = scene["palette"]
    c0, c1, c2 = (np.array(c, dtype=np.float32) for c in colours)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * math.pi)
    ramp = np.clip(0.5 + (xs - 0.5) * math.cos(angle) + (ys - 0.5) * math.sin(angle), 0.0, 1.0)
    gx, gy = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
    aspect = width / height
    glow = np.exp(-(((xs - gx) * aspect) ** 2 + (ys - gy) ** 2) / 0.18)
    vignette = 1.0 - 0.35 * np.clip(((xs - 0.5) * 1.6) ** 2 + ((ys - 0.5) * 1.6) ** 2, 0.0, 1.0)
    image = np.empty((height, width, 3), dtype=np.float32)
    for ch in range(3):
        plane = c0[ch] + (c1[ch] - c0[ch]) * ramp
        plane += (c2[ch] - plane) * (glow * 0.45)
        image[:, :, ch] = plane
    base = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).convert("RGBA")
    del image, ramp, glow
    base.alpha_composite(_draw_motif(scene["motif"], size, colours, rng))
    out = np.asarray(base.convert("RGB"), dtype=np.float32)
    out *= vignette[:, :, None]
    # Keep every pixel well above ffmpeg's blackdetect threshold.
    np.maximum(out, 28.0, out=out)
    return Image.fromarray(out.astype(np.uint8))


def _text_layers(scene: dict, board: dict) -> list[tuple[Image.Image, int, int, int, int]]:
    """(image, x, y, start frame in scene, slide px) for the heading and the caption."""
    width, height = board["width"], board["height"]
    left, top, right, bottom = safe_box(width, height)
    safe_w, safe_h = right - left, bottom - top
    unit = min(width, height)
    portrait = height > width * 1.2
    slide = max(2, int(round(height * 0.03)))
    big = scene["kind"] == "title"
    heading = fit_text(
        scene["heading"], font_chain(bold=True), safe_w, int(safe_h * (0.36 if portrait else 0.42)) - slide,
        max_size=max(12, int(unit * (0.14 if big else 0.12))), min_size=max(10, int(unit * 0.05)), max_lines=2,
    )
    caption = fit_text(
        scene["caption"], font_chain(), int(safe_w * (1.0 if portrait else 0.9)),
        int(safe_h * (0.36 if portrait else 0.34)) - slide,
        max_size=max(10, int(unit * 0.06)), min_size=max(10, int(unit * 0.032)), max_lines=4 if portrait else 3,
    )
    head_img = draw_text(heading, font_chain(bold=True))
    cap_img = draw_text(caption, font_chain(), color=(245, 245, 240))
    cap_y = bottom - slide - cap_img.height
    space = cap_y - top - slide
    head_y = top + max(0, (space - head_img.height) // 2)
    return [
        (head_img, (width - head_img.width) // 2, head_y, scene["heading_in"], slide),
        (cap_img, (width - cap_img.width) // 2, cap_y, scene["caption_in"], slide),
    ]


def render_visuals(board: dict, work_dir: Path, progress, cancelled) -> dict:
    """Write each scene's background and text layers; returns the manifest (cached by content)."""
    final, cached, tmp = stage_dir(board, "visuals", work_dir, "manifest.json")
    if cached is not None:
        progress(1.0, "Visuals ready (cached)")
        return cached
    try:
        bg_size = background_size(board["width"], board["height"])
        assets_dir = Path(work_dir) / "assets"  # the brief's own material, fetched once per task
        scenes = []
        count = len(board["scenes"])
        for i, scene in enumerate(board["scenes"]):
            if cancelled():
                raise Cancelled("visuals cancelled")
            progress(i / count, f"Painting scene {i + 1}/{count}")
            # A scene from a clip plays the clip (compose); the others zoom a still background.
            clip = own_material.scene_clip(scene, board, i, tmp, assets_dir, cancelled)
            if not clip:
                background = own_material.scene_background(scene, bg_size, assets_dir)
                if background is None:
                    background = render_background(scene, bg_size)
                background.save(tmp / f"scene{i:02d}-bg.png", compress_level=1)
            layers = []
            text_layers = own_material.scene_layers(scene, board, _text_layers(scene, board), assets_dir)
            for k, (img, x, y, start, slide) in enumerate(text_layers):
                name = f"scene{i:02d}-text{k}.png"
                img.save(tmp / name, compress_level=1)
                layers.append({"png": name, "x": x, "y": y, "w": img.width, "h": img.height,
                               "start": start, "slide": slide})
            if clip:
                entry = {"clip": clip, **own_material.clip_facts(tmp / clip)}
            else:
                entry = {"bg": f"scene{i:02d}-bg.png"}
            entry["layers"] = layers
            scenes.append(entry)
        manifest = {"dir": str(final), "bg_size": list(bg_size), "scenes": scenes}
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        publish_dir(tmp, final)
    finally:
        remove_quietly(tmp)
    progress(1.0, "Visuals ready")
    return json.loads((final / "manifest.json").read_text(encoding="utf-8"))
