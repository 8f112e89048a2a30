"""Running a render's stages across the SPEC queues, coordinated through the shared work dir.

The task that claimed the row (on `video_generation`) is the orchestrator: it writes the
storyboard, publishes the visuals (`image_processing`), audio (`audio_processing`), every chunk and
the assembly (`video_processing`) as stage tasks, and waits for their markers. Whoever first
creates a stage's claim file (O_EXCL) runs it; a stage nobody picks up within a few seconds, or
whose runner stopped heartbeating, is run by the orchestrator itself. Duplicates are harmless:
every artifact is keyed by its inputs and renamed into place. No Flask or Celery here.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.pipeline import (
    BadBrief,
    Cancelled,
    PipelineError,
    assemble,
    build_storyboard,
    render_audio,
    render_chunk,
    render_visuals,
)
from worker.pipeline.run import STAGE_WEIGHTS

PICKUP_SECONDS = float(os.environ.get("AURA_STAGE_PICKUP_SECONDS", "3"))
STALE_SECONDS = float(os.environ.get("AURA_STAGE_STALE_SECONDS", "15"))
HEARTBEAT_SECONDS = 1.0
POLL_SECONDS = 0.2

Publish = Callable[[str], bool]  # publish(stage_id) -> published?
Progress = Callable[[float, str, str], None]  # (overall fraction, stage, message)
StageDone = Callable[[str, dict], None]  # (stage id, {"by": runner, "reused": bool, "seconds": float})


def stage_kind(stage_id: str) -> str:
    """`chunk-3` -> `render`; other ids are their own kind."""
    return "render" if stage_id.startswith("chunk-") else stage_id


class StageBoard:
    """The markers of one task's stages inside its work dir."""

    def __init__(self, work_dir: Path, out_dir: Path | None = None):
        self.work_dir = Path(work_dir)
        self.dir = self.work_dir / "stages"
        self.out_dir = out_dir

    def path(self, stage_id: str, suffix: str) -> Path:
        return self.dir / f"{stage_id}.{suffix}"

    @property
    def cancel_file(self) -> Path:
        return self.dir / "CANCEL"

    def storyboard(self) -> dict:
        return json.loads((self.dir / "storyboard.json").read_text(encoding="utf-8"))

    def write_json(self, path: Path, data: Any) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    def reset_for_attempt(self, brief: dict, out_dir: Path) -> dict:
        """Write the storyboard and the output dir; forget claims and errors of earlier attempts."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for pattern in ("*.claim", "*.error", "*.progress", "CANCEL", "assemble.done"):
            for stale in self.dir.glob(pattern):
                stale.unlink(missing_ok=True)
        board = build_storyboard(brief)
        self.write_json(self.dir / "storyboard.json", board)
        self.write_json(self.dir / "output.json", {"out_dir": str(out_dir)})
        return board

    def output_dir(self) -> Path:
        return Path(json.loads((self.dir / "output.json").read_text())["out_dir"])

    def try_claim(self, stage_id: str, owner: str) -> bool:
        try:
            fd = os.open(self.path(stage_id, "claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(owner)
        return True

    def claim_age(self, stage_id: str) -> float | None:
        try:
            return time.time() - self.path(stage_id, "claim").stat().st_mtime
        except FileNotFoundError:
            return None

    def done(self, stage_id: str) -> Any:
        try:
            return json.loads(self.path(stage_id, "done").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def error(self, stage_id: str) -> dict | None:
        try:
            return json.loads(self.path(stage_id, "error").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def progress_of(self, stage_id: str) -> float:
        if self.path(stage_id, "done").exists():
            return 1.0
        try:
            return float(self.path(stage_id, "progress").read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0.0


def execute(board_files: StageBoard, board: dict, stage_id: str, owner: str,
            cancelled: Callable[[], bool], on_progress: Callable[[float, str], None] | None = None) -> Any:
    """Run one claimed stage, heartbeating its claim; writes its done or error marker."""
    claim = board_files.path(stage_id, "claim")
    progress_file = board_files.path(stage_id, "progress")
    stop = threading.Event()
    last = {"write": 0.0}

    def heartbeat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(claim)
            except FileNotFoundError:
                return

    def progress(fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - last["write"] > 0.3 or fraction >= 1.0:
            last["write"] = now
            progress_file.write_text(f"{fraction:.4f}")
        if on_progress:
            on_progress(fraction, message)

    def stop_requested() -> bool:
        return cancelled() or board_files.cancel_file.exists()

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    work = board_files.work_dir
    try:
        kind = stage_kind(stage_id)
        if kind == "visuals":
            value: Any = render_visuals(board, work, progress, stop_requested)
        elif kind == "audio":
            value = render_audio(board, work, progress, stop_requested)
        elif kind == "render":
            value = str(render_chunk(board, int(stage_id.split("-", 1)[1]), work, progress, stop_requested))
        elif kind == "assemble":
            value = assemble(board, work, board_files.output_dir(), progress, stop_requested)
        else:
            raise PipelineError(f"unknown stage {stage_id}")
        board_files.write_json(board_files.path(stage_id, "done"), {"value": value, "by": owner})
        return value
    except Cancelled:
        claim.unlink(missing_ok=True)
        raise
    except Exception as exc:
        board_files.write_json(board_files.path(stage_id, "error"), {
            "type": type(exc).__name__, "message": str(exc)[:1000], "stage": stage_kind(stage_id),
            "retryable": not isinstance(exc, BadBrief), "by": owner})
        raise
    finally:
        stop.set()
        beat.join(timeout=2)


def run_stage_task(work_dir: Path, stage_id: str, owner: str, cancelled: Callable[[], bool]) -> str:
    """What a stage task does on its own queue: claim the stage if nobody has, run it."""
    files = StageBoard(work_dir)
    if not (files.dir / "storyboard.json").exists() or files.done(stage_id) is not None:
        return "nothing to do"
    if not files.try_claim(stage_id, owner):
        return "claimed elsewhere"
    try:
        execute(files, files.storyboard(), stage_id, owner, cancelled)
    except Cancelled:
        return "cancelled"
    except Exception:
        return "failed"
    return "done"


class Orchestrator:
    """Drives one task attempt's stages to the finished result."""

    def __init__(self, brief: dict, work_dir: Path, out_dir: Path, owner: str, publish: Publish,
                 progress: Progress, cancelled: Callable[[], bool], on_done: StageDone | None = None):
        self.files = StageBoard(work_dir)
        self.on_done = on_done or (lambda _stage, _info: None)
        self.started = time.monotonic()
        self.brief = brief
        self.out_dir = Path(out_dir)
        self.owner = owner
        self.publish = publish
        self.progress = progress
        self.cancelled = cancelled
        self.published_at: dict[str, float] = {}
        self.board: dict = {}

    def check_cancel(self) -> None:
        if self.cancelled():
            self.files.cancel_file.touch()
            raise Cancelled("cancelled")

    def run(self) -> dict:
        self.check_cancel()
        self.progress(0.0, "storyboard", "Planning the storyboard")
        self.board = self.files.reset_for_attempt(self.brief, self.out_dir)
        self.progress(STAGE_WEIGHTS["storyboard"], "storyboard", f"{len(self.board['scenes'])} scenes")
        chunks = [f"chunk-{c['index']}" for c in self.board["chunks"]]
        self.start(["visuals", "audio"])
        self.wait(["visuals"], "visuals", chunks_hint=chunks)
        self.start(chunks)
        self.wait(["audio", *chunks], "render", chunks_hint=chunks)
        self.start(["assemble"])
        self.wait(["assemble"], "assemble", chunks_hint=chunks)
        return self.files.done("assemble")["value"]

    def start(self, stage_ids: list[str]) -> None:
        for stage_id in stage_ids:
            done = self.files.done(stage_id)
            if done is None:
                self.publish(stage_id)
                self.published_at[stage_id] = time.monotonic()
            else:
                # Finished by an earlier attempt: its artifacts are keyed by their inputs.
                self.on_done(stage_id, {"by": done.get("by"), "reused": True, "seconds": 0.0})

    def overall(self, chunks: list[str]) -> float:
        total = self.board["total_frames"] or 1
        frames = {f"chunk-{c['index']}": c["frames"] for c in self.board["chunks"]}
        value = STAGE_WEIGHTS["storyboard"]
        value += STAGE_WEIGHTS["visuals"] * self.files.progress_of("visuals")
        value += STAGE_WEIGHTS["audio"] * self.files.progress_of("audio")
        value += sum(STAGE_WEIGHTS["render"] * frames[c] / total * self.files.progress_of(c) for c in chunks)
        value += STAGE_WEIGHTS["assemble"] * self.files.progress_of("assemble")
        return min(value, 0.999)

    def wait(self, stage_ids: list[str], phase: str, chunks_hint: list[str]) -> None:
        """Wait for stages, running locally any that nobody picked up or whose runner died."""
        pending = list(stage_ids)
        while pending:
            self.check_cancel()
            for stage_id in list(pending):
                done = self.files.done(stage_id)
                if done is not None:
                    pending.remove(stage_id)
                    if stage_id in self.published_at:
                        self.on_done(stage_id, {"by": done.get("by"), "reused": False,
                                                "seconds": round(time.monotonic() - self.published_at[stage_id], 2)})
                    continue
                error = self.files.error(stage_id)
                if error is not None:
                    cls = PipelineError if error.get("retryable", True) else BadBrief
                    raise cls(f"{error['type']} in {stage_id}: {error['message']}")
                age = self.files.claim_age(stage_id)
                waited = time.monotonic() - self.published_at.get(stage_id, 0.0)
                if (age is None and waited > PICKUP_SECONDS) or (age is not None and age > STALE_SECONDS):
                    if age is not None:
                        self.files.path(stage_id, "claim").unlink(missing_ok=True)
                    if self.files.try_claim(stage_id, self.owner):
                        self.run_locally(stage_id, chunks_hint)
            frames = [c for c in chunks_hint if self.files.done(c) is not None]
            message = f"{len(frames)}/{len(chunks_hint)} chunks" if phase == "render" else ""
            self.progress(self.overall(chunks_hint), phase, message)
            if pending:
                time.sleep(POLL_SECONDS)

    def run_locally(self, stage_id: str, chunks: list[str]) -> None:
        kind = stage_kind(stage_id)

        def on_progress(_fraction: float, message: str) -> None:
            self.progress(self.overall(chunks), kind, message)

        execute(self.files, self.board, stage_id, self.owner, self.cancelled, on_progress)
