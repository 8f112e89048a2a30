"""A render's stage artifacts in storage (see docs/architecture.md).

Each stage (a row of render_stages, webapp/services/stages.py) runs on its own queue, on any
host: it downloads its inputs from storage into a scratch folder of its own, runs the pipeline
function there, uploads what it made and empties the folder whatever the outcome. Artifacts are
keyed by their inputs, so a duplicate run or a later attempt finds them and reuses them.
No Flask or Celery here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from webapp.catalog import stage_kind
from webapp.storage import NotFound, Storage, output_key, scratch_dir, work_key, work_prefix
from worker.pipeline import PipelineError, assemble, render_audio, render_chunk, render_visuals
from worker.pipeline.cache import stage_key
from worker.pipeline.compose import chunk_files, chunk_path, chunk_runs_path, visuals_dir

StageProgress = Callable[[float, str], None]


STORYBOARD = "storyboard.json"
VISUALS_META = "manifest.json"
AUDIO_META = "audio.json"


class Artifacts:
    """One task's stage artifacts in storage; each stage runs in a scratch folder of its own.

    A stage downloads its inputs into scratch, runs the pipeline function there and uploads what
    it made (a folder's closing metadata file last, so its presence means the folder is whole).
    An artifact already in storage, keyed by its inputs, is reused.
    """

    def __init__(self, storage: Storage, config: Mapping[str, Any], task_id: str):
        self.storage = storage
        self.config = config
        self.task_id = task_id

    def key(self, name: str) -> str:
        return work_key(self.task_id, name)

    def write_storyboard(self, board: dict) -> None:
        self.storage.put_bytes(self.key(STORYBOARD), json.dumps(board, ensure_ascii=False).encode("utf-8"))

    def storyboard(self) -> dict | None:
        try:
            return json.loads(self.storage.read_bytes(self.key(STORYBOARD)))
        except NotFound:
            return None

    def input_hash(self, board: dict) -> str:
        """What every artifact of this storyboard is keyed by."""
        return stage_key(board, "board")

    def _result_key(self, board: dict) -> str:
        return self.key(f"assemble-{stage_key(board, 'assemble')}.json")

    def existing(self, board: dict, stage_id: str) -> list[str] | None:
        """The keys of a stage's artifacts when an earlier run left them complete, else None."""
        kind = stage_kind(stage_id)
        if kind in ("visuals", "audio"):
            name = self._folder_name(board, kind)
            meta = VISUALS_META if kind == "visuals" else AUDIO_META
            return [self.key(name)] if self.storage.exists(self.key(f"{name}/{meta}")) else None
        if kind == "render":
            key = self.key(chunk_path(board, int(stage_id.split("-", 1)[1]), Path()).name)
            return [key] if self.storage.exists(key) else None
        result = self.result(board)
        return [self._result_key(board)] if result is not None else None

    def result(self, board: dict) -> dict | None:
        """The assembled result, when it and every output it names are in storage."""
        if not self.storage.exists(self._result_key(board)):
            return None
        result = json.loads(self.storage.read_bytes(self._result_key(board)))
        if all(self.storage.exists(output_key(self.task_id, f["name"])) for f in result["files"]):
            return result
        return None

    def _folder_name(self, board: dict, kind: str) -> str:
        return f"{kind}-{stage_key(board, kind)}"

    def _fetch_folder(self, name: str, meta: str, scratch: Path, only=None) -> None:
        """Download a stage's folder into scratch: all of it, or the metadata file and the names
        `only(metadata)` picks from it."""
        try:
            if only is None:
                self.storage.get_tree(self.key(name), scratch / name, last=meta)
                return
            data = self.storage.read_bytes(self.key(f"{name}/{meta}"))
        except NotFound:
            raise PipelineError(f"{name} is not in storage yet", name.split("-", 1)[0]) from None
        self.storage.get_files(self.key(name), only(json.loads(data)), scratch / name)
        (scratch / name / meta).write_bytes(data)

    def _folder_stage(self, board: dict, kind: str, meta: str, func, progress: StageProgress,
                      cancelled: Callable[[], bool], local_only: tuple[str, ...] = ()) -> list[str]:
        """Run a stage whose artifact is a folder and upload the folder, but for `local_only`
        (files the later stages do not read)."""
        name = self._folder_name(board, kind)
        if self.storage.exists(self.key(f"{name}/{meta}")):
            progress(1.0, f"{kind.capitalize()} ready (cached)")
            return [self.key(name)]
        with scratch_dir(self.config, self.task_id, kind) as scratch:
            func(board, scratch, progress, cancelled)
            for leftover in local_only:
                (scratch / name / leftover).unlink(missing_ok=True)
            self.storage.put_tree(self.key(name), scratch / name, last=meta)
        return [self.key(name)]

    def visuals(self, board: dict, progress: StageProgress, cancelled: Callable[[], bool]) -> list[str]:
        return self._folder_stage(board, "visuals", VISUALS_META, render_visuals, progress, cancelled)

    def audio(self, board: dict, progress: StageProgress, cancelled: Callable[[], bool]) -> list[str]:
        # The assembly muxes the encoded track (mix.m4a); the PCM mix it was encoded from stays here.
        return self._folder_stage(board, "audio", AUDIO_META, render_audio, progress, cancelled,
                                  local_only=("mix.wav",))

    def chunk(self, board: dict, index: int, progress: StageProgress, cancelled: Callable[[], bool]) -> list[str]:
        name = chunk_path(board, index, Path()).name
        if self.storage.exists(self.key(name)):
            progress(1.0, f"Chunk {index + 1}/{len(board['chunks'])} ready (cached)")
            return [self.key(name)]
        with scratch_dir(self.config, self.task_id, f"chunk{index}") as scratch:
            self._fetch_folder(visuals_dir(board, Path()).name, VISUALS_META, scratch,
                               only=lambda manifest: chunk_files(board, manifest, index))
            path = render_chunk(board, index, scratch, progress, cancelled)
            runs = chunk_runs_path(board, index, scratch)
            self.storage.put_file(self.key(runs.name), runs)  # before the chunk, which closes the pair
            self.storage.put_file(self.key(name), path)
        return [self.key(name)]

    def assemble(self, board: dict, progress: StageProgress, cancelled: Callable[[], bool]) -> dict:
        """Join the chunks into the task's outputs; the video is uploaded last."""
        cached = self.result(board)
        if cached is not None:
            progress(1.0, "Video ready (cached)")
            return cached
        with scratch_dir(self.config, self.task_id, "assemble") as scratch:
            names = [chunk_path(board, chunk["index"], Path()).name for chunk in board["chunks"]]
            try:
                self.storage.get_files(work_prefix(self.task_id), names, scratch)
            except NotFound as exc:
                raise PipelineError(f"chunks not rendered: {exc}", "assemble") from None
            try:  # the chunks' black and frozen runs; without them the gate decodes the video
                self.storage.get_files(work_prefix(self.task_id),
                                       [chunk_runs_path(board, c["index"], Path()).name for c in board["chunks"]],
                                       scratch)
            except NotFound:
                pass
            self._fetch_folder(self._folder_name(board, "audio"), AUDIO_META, scratch)
            out = scratch / "out"
            result = assemble(board, scratch, out, progress, cancelled)
            for item in sorted(result["files"], key=lambda f: f["kind"] == "video"):
                self.storage.put_file(output_key(self.task_id, item["name"]), out / item["name"])
        self.storage.put_bytes(self._result_key(board), json.dumps(result, ensure_ascii=False).encode("utf-8"))
        return result

    def run(self, board: dict, stage_id: str, progress: StageProgress,
            cancelled: Callable[[], bool]) -> tuple[list[str], dict | None]:
        """Run one stage: (its artifact keys, the assembled result for `assemble`, else None)."""
        if stage_kind(stage_id) == "assemble":
            return [self._result_key(board)], self.assemble(board, progress, cancelled)
        return self._run(board, stage_id, progress, cancelled), None

    def _run(self, board: dict, stage_id: str, progress: StageProgress, cancelled: Callable[[], bool]) -> Any:
        kind = stage_kind(stage_id)
        if kind == "visuals":
            return self.visuals(board, progress, cancelled)
        if kind == "audio":
            return self.audio(board, progress, cancelled)
        if kind == "render":
            return self.chunk(board, int(stage_id.split("-", 1)[1]), progress, cancelled)
        if kind == "assemble":
            return self.assemble(board, progress, cancelled)
        raise PipelineError(f"unknown stage {stage_id}")
