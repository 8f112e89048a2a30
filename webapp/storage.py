"""Storage: the one owner of every byte a task reads or writes (see docs/architecture.md).

Two backends behind one small interface, chosen by `STORAGE_URL`:

* `file:///some/dir` - a local directory (the default: the instance's media dir), and
* `s3://bucket/prefix` - any S3-compatible object store through boto3 (`S3_ENDPOINT_URL`, the
  standard AWS credential variables). Large files go up in multipart and come down streamed.

Keys derive from task ids, and this module is the only place that builds them or a media URL:

* `<task_id>/<name>` - a finished task's outputs (video, poster, thumbnail, subtitles), served
  as `/media/<task_id>/<name>`;
* `work/<task_id>/<name>` - stage artifacts of every attempt (storyboard, visuals, audio,
  chunks), kept until the task ends so a retry resumes;
* `assets/<asset_id>/<name>` - the media library's uploads and their thumbnails, served as
  `/assets/<asset_id>/file|thumbnail` to those who may see the asset.

Workers keep nothing else but a per-stage scratch directory under `SCRATCH_DIR`.
Imported by the web app and the worker alike; it imports neither Flask views nor `worker`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

WORK_PREFIX = "work/"
ASSET_PREFIX = "assets/"
#: Top-level key segments that never hold a task's public outputs.
PRIVATE_PREFIXES = ("work", "tmp", "assets")
SCRATCH_PREFIX = "aura-"
MULTIPART_BYTES = 16 * 1024 * 1024
STREAM_CHUNK = 256 * 1024
URL_SECONDS = 300


class StorageError(Exception):
    """A storage operation failed (missing object, bad key, unreachable store)."""


class NotFound(StorageError):
    """The object does not exist (a read or download of a missing key)."""


class BadKey(StorageError):
    """A key that could escape its prefix or is otherwise not one of ours."""


def check_key(key: str) -> str:
    """Return `key` if it is a plain relative key: no `..`, no empty or dot-leading segments."""
    if not isinstance(key, str) or not key or len(key) > 512 or "\\" in key or "\x00" in key:
        raise BadKey(f"bad key {key!r}")
    for part in key.split("/"):
        if not part or part.startswith("."):
            raise BadKey(f"bad key {key!r}")
    return key


def output_key(task_id: str, name: str) -> str:
    """Key of one of a task's outputs (`video.mp4`, `poster.jpg`...)."""
    return check_key(f"{task_id}/{name}")


def output_prefix(task_id: str) -> str:
    return check_key(task_id) + "/"


def work_prefix(task_id: str) -> str:
    """Prefix of the stage artifacts of every attempt of a task."""
    return f"{WORK_PREFIX}{check_key(task_id)}/"


def work_key(task_id: str, name: str) -> str:
    return check_key(f"{work_prefix(task_id)}{name}")


def asset_key(asset_id: str, name: str) -> str:
    """Key of one file of a library asset (`original.<ext>`, `thumb.jpg`); served by /assets only,
    after an ownership check, never by /media."""
    return check_key(f"{ASSET_PREFIX}{check_key(asset_id)}/{name}")


def asset_url(asset_id: str, name: str) -> str:
    """The app's URL of one file of an asset (`file` or `thumbnail`)."""
    return f"/assets/{check_key(asset_id)}/{name}"


def media_url(task_id: str, name: str) -> str:
    """The app's URL of one output; derived when read, never stored."""
    return f"/media/{output_key(task_id, name)}"


def public_key(path: str) -> str | None:
    """The key behind `/media/<path>`, or None when it is not a servable output."""
    try:
        key = check_key(path)
    except BadKey:
        return None
    first = key.split("/", 1)[0]
    if first in PRIVATE_PREFIXES or "/" not in key:
        return None
    return key


def with_urls(result: dict[str, Any] | None, task_id: str) -> dict[str, Any] | None:
    """A task's stored result plus the /media URL of every file it names."""
    if not result:
        return result
    result = dict(result)
    result["files"] = [{**item, "url": media_url(task_id, item["name"])} for item in result.get("files", [])]
    for key in ("video", "poster", "thumbnail"):
        if result.get(key):
            result[f"{key}_url"] = media_url(task_id, result[key])
    return result


class Storage:
    """The interface; see LocalStorage and S3Storage."""

    url: str

    def put_file(self, key: str, path: Path) -> None:
        raise NotImplementedError

    def put_bytes(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """A stream of bytes start..end (inclusive, like HTTP Range) of an object."""
        raise NotImplementedError

    def download(self, key: str, dest: Path) -> None:
        """Stream an object into a local file (written to a temp name, then renamed)."""
        raise NotImplementedError

    def size(self, key: str) -> int | None:
        """Size in bytes, or None when the object does not exist."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key under `prefix`, in no promised order."""
        raise NotImplementedError

    def signed_url(self, key: str, seconds: int = URL_SECONDS, filename: str | None = None) -> str | None:
        """A short-lived URL a browser can fetch directly, or None when the app must stream."""
        raise NotImplementedError

    # Built on the primitives above.

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def stream(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Stream out an object (or a byte range of it) in bounded chunks."""
        with self.open(key, start, end) as handle:
            while chunk := handle.read(STREAM_CHUNK):
                yield chunk

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        for key in keys:
            self.delete(key)
        return len(keys)

    #: How many files of a tree move at once (an object store answers each request with a delay
    #: of its own, so a folder of many small files goes faster in parallel).
    tree_workers = 1

    def _each(self, func, items: list) -> None:
        if self.tree_workers <= 1 or len(items) <= 1:
            for item in items:
                func(item)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(self.tree_workers, len(items))) as pool:
            for _ in pool.map(func, items):  # re-raises the first failure
                pass

    def put_tree(self, prefix: str, folder: Path, last: str | None = None) -> list[str]:
        """Upload every file under `folder` as `prefix/<relative path>`; `last` (a name) goes up
        last, once every other file is up, so whoever sees it sees a complete folder. Returns the keys."""
        folder = Path(folder)
        pairs = [(check_key(f"{prefix.rstrip('/')}/{p.relative_to(folder).as_posix()}"), p)
                 for p in sorted(p for p in folder.rglob("*") if p.is_file())]
        closing = [pair for pair in pairs if pair[1].relative_to(folder).as_posix() == last]
        others = [pair for pair in pairs if pair not in closing]
        self._each(lambda pair: self.put_file(*pair), others)
        for key, path in closing:
            self.put_file(key, path)
        return [key for key, _ in others + closing]

    def get_tree(self, prefix: str, folder: Path, last: str | None = None) -> int:
        """Download every object under `prefix/` into `folder`; `last` (a name) comes last, so a
        reader that waits for it sees a complete folder. NotFound when `last` is not there (the
        folder is incomplete or absent)."""
        prefix = prefix.rstrip("/") + "/"
        names = sorted(key[len(prefix):] for key in self.list(prefix))
        if last is not None and last not in names:
            raise NotFound(f"no object {prefix}{last}")
        return self.get_files(prefix, names, folder, last=last)

    def get_files(self, prefix: str, names: Iterable[str], folder: Path, last: str | None = None) -> int:
        """Download `prefix/<name>` into `folder/<name>` for each name, several at a time; `last`
        comes after the others."""
        prefix = prefix.rstrip("/") + "/"
        names = list(dict.fromkeys(names))
        others = [name for name in names if name != last]
        self._each(lambda name: self.download(prefix + name, Path(folder) / name), others)
        if last in names:
            self.download(prefix + last, Path(folder) / last)
        return len(names)


class _Window:
    """A file object limited to `length` bytes."""

    def __init__(self, handle: BinaryIO, length: int | None):
        self.handle = handle
        self.left = length

    def read(self, size: int = -1) -> bytes:
        if self.left is None:
            return self.handle.read(size)
        if size < 0 or size > self.left:
            size = self.left
        data = self.handle.read(size)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> _Window:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalStorage(Storage):
    """Objects as files under one directory; writes are atomic renames."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()

    def path(self, key: str) -> Path:
        """The file of a key (the web app streams it with Range support)."""
        return self.root / check_key(key)

    def _write(self, key: str, copy) -> None:
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".tmp-{uuid.uuid4().hex[:10]}-{final.name}")
        try:
            copy(tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, key: str, path: Path) -> None:
        self._write(key, lambda tmp: shutil.copyfile(path, tmp))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(key, lambda tmp: tmp.write_bytes(data))

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        try:
            handle = open(self.path(key), "rb")
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise NotFound(f"no object {key}") from exc
        handle.seek(start)
        return _Window(handle, None if end is None else end - start + 1)  # type: ignore[return-value]

    def download(self, key: str, dest: Path) -> None:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(self.path(key), dest)
        except FileNotFoundError as exc:
            raise NotFound(f"no object {key}") from exc

    def size(self, key: str) -> int | None:
        try:
            path = self.path(key)
            return path.stat().st_size if path.is_file() else None
        except OSError:
            return None

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)
        # Drop the folders a task's keys made, up to the root.
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def delete_prefix(self, prefix: str) -> int:
        count = super().delete_prefix(prefix)
        if prefix.endswith("/"):
            shutil.rmtree(self.root / prefix.rstrip("/"), ignore_errors=True)
        return count

    def signed_url(self, key: str, seconds: int = URL_SECONDS, filename: str | None = None) -> str | None:
        return None


class S3Storage(Storage):
    """Objects in an S3-compatible bucket under an optional key prefix."""

    tree_workers = 8

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, access_key: str | None = None, secret_key: str | None = None):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region or "us-east-1",
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"},
                          max_pool_connections=16))
        self.transfer = TransferConfig(multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES,
                                       max_concurrency=4, use_threads=True)

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _errors(self):
        from botocore.exceptions import BotoCoreError, ClientError

        return (BotoCoreError, ClientError)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (tests and first runs)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self._errors():
            self.client.create_bucket(Bucket=self.bucket)

    def put_file(self, key: str, path: Path) -> None:
        try:
            self.client.upload_file(str(path), self.bucket, self._name(key), Config=self.transfer)
        except self._errors() as exc:
            raise StorageError(f"upload of {key} failed: {exc}") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)
        except self._errors() as exc:
            raise StorageError(f"upload of {key} failed: {exc}") from exc

    def _missing(self, exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
            "404", "NoSuchKey", "NotFound")

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        extra = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._name(key), **extra)["Body"]
        except self._errors() as exc:
            raise (NotFound if self._missing(exc) else StorageError)(f"no object {key}: {exc}") from exc

    def download(self, key: str, dest: Path) -> None:
        """One GET streamed to a temp file (boto3's download_file asks for the size first: a
        second request per object, which a folder of small stills pays many times over); objects
        above the multipart size come down in parallel ranges."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".tmp-{uuid.uuid4().hex[:10]}-{dest.name}")
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
            body = answer["Body"]
            try:
                if int(answer.get("ContentLength") or 0) > MULTIPART_BYTES:
                    body.close()
                    self.client.download_file(self.bucket, self._name(key), str(tmp), Config=self.transfer)
                else:
                    with open(tmp, "wb") as out:
                        for chunk in body.iter_chunks(STREAM_CHUNK):
                            out.write(chunk)
            finally:
                body.close()
            os.replace(tmp, dest)
        except self._errors() as exc:
            kind = NotFound if self._missing(exc) else StorageError
            raise kind(f"download of {key} failed: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def size(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._name(key))["ContentLength"])
        except self._errors() as exc:
            if self._missing(exc):
                return None
            raise StorageError(f"stat of {key} failed: {exc}") from exc

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                      Prefix=self.prefix + prefix)
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix):]

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        for i in range(0, len(keys), 1000):
            batch = [{"Key": self.prefix + k} for k in keys[i:i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def signed_url(self, key: str, seconds: int = URL_SECONDS, filename: str | None = None) -> str | None:
        params = {"Bucket": self.bucket, "Key": self._name(key)}
        if filename:
            params["ResponseContentDisposition"] = f'inline; filename="{filename}"'
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds)


def open_storage(url: str, options: Mapping[str, Any] | None = None) -> Storage:
    """A backend for `file:///dir` or `s3://bucket/prefix`."""
    options = options or {}
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(Path(parsed.path))
    if parsed.scheme == "s3" and parsed.netloc:
        return S3Storage(parsed.netloc, parsed.path, endpoint_url=options.get("S3_ENDPOINT_URL"),
                         region=options.get("AWS_DEFAULT_REGION"),
                         access_key=options.get("AWS_ACCESS_KEY_ID"),
                         secret_key=options.get("AWS_SECRET_ACCESS_KEY"))
    raise StorageError(f"STORAGE_URL must be file:///path or s3://bucket/prefix, got {url!r}")


_cache: dict[tuple, Storage] = {}
_cache_lock = threading.Lock()
STORAGE_OPTIONS = ("S3_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def storage_for(config: Mapping[str, Any]) -> Storage:
    """The (cached) backend of an app configuration."""
    options = {name: config.get(name) for name in STORAGE_OPTIONS}
    cache_key = (config["STORAGE_URL"], *options.values())
    with _cache_lock:
        backend = _cache.get(cache_key)
        if backend is None:
            backend = _cache[cache_key] = open_storage(config["STORAGE_URL"], options)
        return backend


def get_storage() -> Storage:
    """The backend of the current Flask app."""
    from flask import current_app

    return storage_for(current_app.config)


# --- scratch: a worker's only local files ---------------------------------------------------------


def scratch_root(config: Mapping[str, Any]) -> Path:
    return Path(config.get("SCRATCH_DIR") or tempfile.gettempdir())


@contextmanager
def scratch_dir(config: Mapping[str, Any], task_id: str, label: str) -> Iterator[Path]:
    """A fresh folder for one stage of one task, emptied when the stage ends whatever the outcome."""
    label = label.replace("-", "_")
    folder = scratch_root(config) / f"{SCRATCH_PREFIX}{task_id}-{label}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def scratch_task_id(name: str) -> str | None:
    """The task id in a scratch folder's name (`aura-<task id>-<label>-<random>`)."""
    if not name.startswith(SCRATCH_PREFIX):
        return None
    rest = name[len(SCRATCH_PREFIX):]
    parts = rest.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else None


# --- removal: every way a task ends, and the orphan sweep -----------------------------------------


def remove_task_files(storage: Storage, task_id: str, *, keep_outputs: bool) -> int:
    """Delete what a task's attempts left: its artifacts and, unless kept, its outputs."""
    count = storage.delete_prefix(work_prefix(task_id))
    if not keep_outputs:
        count += storage.delete_prefix(output_prefix(task_id))
    return count


def forget_task_files(config: Mapping[str, Any], task_id: str, *, keep_outputs: bool) -> int:
    """What every way a task ends calls: its artifacts and (unless completed) its outputs go."""
    return remove_task_files(storage_for(config), task_id, keep_outputs=keep_outputs)


def task_ids_in(storage: Storage) -> dict[str, set[str]]:
    """{task id: {"work", "output"}} for every task that has objects."""
    found: dict[str, set[str]] = {}
    for key in storage.list(""):
        parts = key.split("/")
        if parts[0] == "work" and len(parts) > 2:
            found.setdefault(parts[1], set()).add("work")
        elif parts[0] not in PRIVATE_PREFIXES and len(parts) > 1:
            found.setdefault(parts[0], set()).add("output")
    return found


def sweep_scratch(config: Mapping[str, Any], live: Iterable[str], min_age: float = 60.0) -> int:
    """Remove scratch folders of tasks that are not live (older than `min_age` seconds)."""
    import time

    live = set(live)
    removed = 0
    root = scratch_root(config)
    if not root.is_dir():
        return 0
    for entry in root.iterdir():
        task_id = scratch_task_id(entry.name)
        if task_id is None or task_id in live:
            continue
        try:
            if time.time() - entry.stat().st_mtime < min_age:
                continue
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed
