"""Benchmark: the whole system, as a user drives it, with six clips against none.

Starts the README's run command (web app, workers, beat; SQLite, local storage) on a free port,
uploads six 4 s 1920x1080 clips through `POST /assets`, and submits a 60 s 1920x1080 high brief
made of them and the same brief without them, in turns, each run with a new seed (nothing
cached). It prints each render's wall time from submit to completed, the video's facts and
whether it decodes without an error, then the medians, spreads and their ratio.

Target (issue "the user's own material"): six clips within 1.2x of the procedural video.
`bench/material.py` measures the part the material changes (visuals and chunks) in-process.
With --phone the clips are as phones record them (3840x2160 HLG HEVC at 60 fps); the renders
start once the workers have made their proxies, and the time that took is printed.

    .venv/bin/python bench/material_system.py [--runs 3] [--phone]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import material  # noqa: E402  (bench/material.py: the same briefs and clips, rendered in-process)

from scripts.smoke_run import free_port, new_user_env, wait_started  # noqa: E402
from webapp.mediaprobe import ffmpeg_exe  # noqa: E402
from worker.pipeline.probe import count_video_frames, probe_media  # noqa: E402


def start(work: Path, port: int) -> tuple[subprocess.Popen, str]:
    """The run command, started as a new user's shell would; returns it and the admin API token."""
    log_path = work / "run.log"
    proc = subprocess.Popen(["bash", "scripts/run.sh", "--port", str(port)], cwd=ROOT, env=new_user_env(),
                            stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    return proc, wait_started(proc, log_path, port)[1]


def upload_clips(base: str, headers: dict, work: Path, phone: bool = False) -> list[str]:
    """Six clips uploaded through the API; phone clips (one made, uploaded six times) also wait
    for the proxies the workers make of them."""
    ids = []
    started = time.monotonic()
    for i in range(6):
        clip = work / "c0.mp4" if phone and i else material.make_clip(work / f"c{i}.mp4", i, phone)
        if not i:
            started = time.monotonic()
        with open(clip, "rb") as f:
            answer = requests.post(f"{base}/assets", headers=headers, files={"file": (clip.name, f, "video/mp4")},
                                   timeout=120)
        if answer.status_code != 201:
            raise SystemExit(f"upload refused: {answer.status_code} {answer.text}")
        ids.append(answer.json()["id"])
    if phone:
        while (states := {requests.get(f"{base}/assets/{i}", headers=headers, timeout=10).json()["proxy"]
                          for i in ids}) != {"ready"}:
            if "failed" in states or time.monotonic() - started > 900:
                raise SystemExit(f"proxies not made: {states}")
            time.sleep(0.5)
        print(f"  six phone clips uploaded and their proxies made in {time.monotonic() - started:.1f} s")
    return ids


def render(base: str, headers: dict, assets: list[str] | None, seed: int, dest: Path) -> float:
    """Submit -> completed wall seconds of a 60 s 1080p high brief; prints the video's facts."""
    brief = material.brief(60, "1920x1080", assets)
    brief["config"]["seed"] = seed
    started = time.monotonic()
    task_id = requests.post(f"{base}/tasks/video/async", headers=headers, json=brief, timeout=30).json()["task_id"]
    while (status := requests.get(f"{base}/tasks/status/{task_id}", headers=headers, timeout=10).json())["status"] \
            not in ("completed", "failed", "cancelled"):
        time.sleep(0.2)
    wall = time.monotonic() - started
    if status["status"] != "completed":
        raise SystemExit(f"{task_id} ended {status['status']}: {status.get('error')}")
    video = next(f for f in status["result"]["files"] if f["kind"] == "video")
    dest.write_bytes(requests.get(base + video["url"], headers=headers, timeout=120).content)
    info = probe_media(dest)
    errors = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(dest), "-f", "null", "-"],
                            capture_output=True, text=True).stderr.strip()
    print(f"  {dest.stem}: {wall:.2f} s; {info['width']}x{info['height']}, {count_video_frames(dest)} frames, "
          f"{info['duration']:.3f} s, {dest.stat().st_size / 1e6:.1f} MB; decode errors: {errors or 'none'}",
          flush=True)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--phone", action="store_true",
                        help="clips of 3840x2160 HLG HEVC at 60 fps, rendered once their proxies are made")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aura-bench-system-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc, token = start(work, port)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        clips = upload_clips(base, headers, work, args.phone)
        print(f"60 s at 1920x1080 high, {args.runs} runs each, {os.cpu_count()} cores (load {os.getloadavg()[0]:.2f})")
        walls: dict[str, list[float]] = {"procedural": [], "clips": []}
        for run in range(args.runs):  # the two take turns, so a change in the machine's load falls on both
            for name, assets in (("procedural", None), ("clips", clips)):
                walls[name].append(render(base, headers, assets, 100 + run, work / f"{name}{run + 1}.mp4"))
        for name, values in walls.items():
            print(f"  {name}: median {statistics.median(values):.2f} s, spread {max(values) - min(values):.2f} s")
        ratio = statistics.median(walls["clips"]) / statistics.median(walls["procedural"])
        print(f"{'PASS' if ratio <= 1.2 else 'FAIL'}  six clips / procedural: {ratio:.2f}x (target <= 1.2x)")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)


if __name__ == "__main__":
    main()
