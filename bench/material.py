"""Benchmark: briefs with the user's own material against procedural ones, same size and length.

Targets (issue "the user's own material"):
  * a scene from an image costs no more than a procedural scene (ratio <= 1.0, visuals + video);
  * a video made of six clips within 1.2x of the procedural one (60 s 1080p with --full);
  * a preview (first 10 s at 640x360) in under 5 s on an idle worker.

    .venv/bin/python bench/material.py [--runs 3] [--seconds 20] [--resolution 1280x720] [--full] [--phone]

The preview is measured for the pictures and for the clips. --phone makes the clips as a phone
records them by default (3840x2160 10-bit HEVC in HLG at 60 frames per second) instead of 1080p
H.264 at 30, and measures them twice: read as uploaded, and read from the proxies a worker makes
of such clips after their upload (1920x1080 H.264 SDR at 30).

Assets are made with ffmpeg/Pillow and put in a local storage directory, as uploads would be.
Each figure is the median of --runs runs, with the spread (max - min).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_clip(path: Path, i: int, phone: bool = False) -> Path:
    """Clip i of six: 4 s of test pattern under a turning hue (every pixel changes on every frame),
    as a camera would hand it over: 1920x1080 H.264 at 30 frames per second, or with `phone` as a
    phone records by default, 3840x2160 10-bit HEVC in HLG (HDR) at 60."""
    from webapp.mediaprobe import ffmpeg_exe

    source = f"testsrc2=size={'3840x2160:rate=60' if phone else '1920x1080:rate=30'}:duration=4,hue=H={i}+t"
    if phone:
        source += (",format=gbrp,zscale=tin=bt709:min=gbr:pin=bt709:rin=full:t=arib-std-b67:m=bt2020nc:p=bt2020"
                   ":r=tv:npl=203,format=yuv420p10le")
        codec = ["-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1",
                 "-x265-params", "log-level=error:colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc"]
    else:
        codec = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source,
                    *codec, str(path)], check=True)
    return path


def make_assets(folder: Path, storage_dir: Path, phone: bool = False) -> dict[str, list[str]]:
    """Six clips and six photos-like pictures, stored under their asset keys."""
    import numpy as np
    from PIL import Image

    from webapp.storage import LocalStorage, asset_key

    storage = LocalStorage(storage_dir)
    ids: dict[str, list[str]] = {"image": [], "clip": []}
    rng = np.random.default_rng(1)
    for i in range(6):
        picture = folder / f"p{i}.jpg"
        base = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
        Image.fromarray(base).resize((1920, 1080), Image.Resampling.BICUBIC).save(picture, quality=90)
        asset_id = f"asset_{i:016x}"
        storage.put_file(asset_key(asset_id, "original.jpg"), picture)
        ids["image"].append(asset_id)
        # A phone clip takes ~25 s to make at 4K: one is made and stored under all six ids.
        clip = folder / "c0.mp4" if phone and i else make_clip(folder / f"c{i}.mp4", i, phone)
        clip_id = f"asset_{i + 16:016x}"
        storage.put_file(asset_key(clip_id, "original.mp4"), clip)
        ids["clip"].append(clip_id)
    if phone:
        # The same clips again under other ids, each with the proxy a worker makes after the upload.
        from webapp.services.proxies import PROXY_NAME
        from worker.pipeline.material import make_proxy

        started = time.perf_counter()
        make_proxy(folder / "c0.mp4", folder / "proxy.mp4", 3840, 2160, 60, True, 4.0)
        print(f"  the proxy of one 4 s phone clip took {time.perf_counter() - started:.2f} s to make")
        ids["proxied"] = []
        for i in range(6):
            clip_id = f"asset_{i + 32:016x}"
            storage.put_file(asset_key(clip_id, "original.mp4"), folder / "c0.mp4")
            storage.put_file(asset_key(clip_id, PROXY_NAME), folder / "proxy.mp4")
            ids["proxied"].append(clip_id)
    return ids


def brief(seconds: int, resolution: str, assets: list[str] | None, quality: str = "high") -> dict:
    config = {"quality": quality, "resolution": resolution, "seed": 11}
    if assets:
        config["assets"] = assets
    return {"theme_id": "Product launch", "keywords_id": ["speed", "design", "care", "price"],
            "target_duration_id": seconds, "user_description_id": "A launch film.", "priority": "normal",
            "config": config}


def video_seconds(the_brief: dict, root: Path) -> float:
    """Wall seconds of the visuals and every chunk (the part the material changes), the chunks
    rendered as the pipeline renders them (`render_chunks`: one per core, side by side)."""
    from worker.pipeline import build_storyboard, render_visuals
    from worker.pipeline.run import render_chunks

    work = root / f"w-{time.monotonic_ns()}"
    board = build_storyboard(the_brief)
    started = time.perf_counter()
    render_visuals(board, work, lambda *_: None, lambda: False)
    render_chunks(board, work, lambda *_: None, lambda: False)
    wall = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)
    return wall


def preview_seconds(the_brief: dict, root: Path) -> float:
    from webapp.services.validation import validate_brief
    from webapp.services.variants import preview_brief
    from worker.pipeline import run_pipeline

    preview = preview_brief(validate_brief(the_brief))
    work, out = root / f"pw-{time.monotonic_ns()}", root / f"po-{time.monotonic_ns()}"
    started = time.perf_counter()
    run_pipeline(preview, work, out, lambda *_: None, lambda: False)
    wall = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return wall


def measure(label: str, runs: int, func) -> float:
    return report(label, [func() for _ in range(runs)])


def report(label: str, values: list[float]) -> float:
    median = statistics.median(values)
    print(f"  {label}: median {median:.2f} s, spread {max(values) - min(values):.2f} s "
          f"({', '.join(f'{v:.2f}' for v in values)})")
    return median


def verdict(name: str, value: float, target: float, unit: str = "") -> None:
    print(f"{'PASS' if value <= target else 'FAIL'}  {name}: {value:.2f}{unit} (target <= {target}{unit})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--resolution", default="1280x720")
    parser.add_argument("--full", action="store_true", help="60 s at 1920x1080, as the target is stated")
    parser.add_argument("--phone", action="store_true", help="clips of 3840x2160 HLG HEVC at 60 frames per second")
    args = parser.parse_args()
    seconds, resolution = (60, "1920x1080") if args.full else (args.seconds, args.resolution)
    root = Path(tempfile.mkdtemp(prefix="aura-bench-material-"))
    os.environ["STORAGE_URL"] = (root / "storage").as_uri()
    try:
        ids = make_assets(root, root / "storage", args.phone)
        clips_made = "3840x2160 HLG HEVC 60 fps" if args.phone else "1920x1080 H.264 30 fps"
        print(f"{seconds} s at {resolution}, clips {clips_made}, {args.runs} runs each, {os.cpu_count()} cores "
              f"(load {os.getloadavg()[0]:.2f})")
        # The three kinds take turns, run after run, so a change in the machine's load falls on all.
        kinds = {"procedural (reference)": None, "six pictures": ids["image"], "six clips": ids["clip"]}
        if args.phone:
            kinds["six clips read from their proxies"] = ids["proxied"]
        walls: dict[str, list[float]] = {name: [] for name in kinds}
        for _ in range(args.runs):
            for name, assets in kinds.items():
                walls[name].append(video_seconds(brief(seconds, resolution, assets), root))
        procedural, images, clips, *proxied = (report(name, values) for name, values in walls.items())
        preview_kinds = {"pictures": "image", "clips": "clip", "clips read from their proxies": "proxied"}
        previews = {label: measure(f"preview of six {label} (10 s at 640x360, whole pipeline)", args.runs,
                                   lambda kind=kind: preview_seconds(brief(60, "1920x1080", ids[kind]), root))
                    for label, kind in preview_kinds.items() if kind in ids}
        verdict("pictures / procedural", images / procedural, 1.0, "x")
        verdict("clips / procedural", clips / procedural, 1.2, "x")
        if proxied:
            verdict("clips read from their proxies / procedural", proxied[0] / procedural, 1.2, "x")
        for label, preview in previews.items():
            verdict(f"preview of {label}", preview, 5.0, " s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
