"""Stage artifacts keyed by a hash of their inputs, written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

# Bump when a change in the code changes what a stage produces, so old artifacts are not reused.
CODE_VERSION = "aura-pipeline-14"


def stage_key(board: dict, stage: str, index: int | None = None) -> str:
    """Hash of the storyboard content, the stage, the chunk index and the code version."""
    payload = json.dumps(
        {"board": board, "stage": stage, "index": index, "code": CODE_VERSION},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:20]


def temp_path(final: Path) -> Path:
    """A unique sibling of `final` to write into before os.replace()."""
    return final.with_name(f".tmp-{uuid.uuid4().hex[:10]}-{final.name}")


def remove_quietly(path: Path) -> None:
    """Delete a file or directory if it exists."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to a temp file and rename it into place."""
    tmp = temp_path(path)
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def stage_dir(board: dict, stage: str, work_dir: Path, meta_name: str) -> tuple[Path, dict | None, Path]:
    """(final dir, its cached metadata or None, a fresh temp dir to build into) for a stage whose
    artifact is a directory closed by a JSON file named `meta_name`."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    final = work_dir / f"{stage}-{stage_key(board, stage)}"
    meta_path = final / meta_name
    if meta_path.is_file():
        return final, json.loads(meta_path.read_text(encoding="utf-8")), Path()
    tmp = work_dir / f".tmp-{stage}-{uuid.uuid4().hex[:10]}"
    tmp.mkdir()
    return final, None, tmp


def publish_dir(tmp_dir: Path, final: Path) -> None:
    """Rename a finished temp directory into place; a concurrent winner is kept."""
    try:
        os.replace(tmp_dir, final)
    except OSError:
        # Another process finished the same stage first (final exists and is non-empty).
        remove_quietly(tmp_dir)
        if not final.exists():
            raise
