"""A directory as an :class:`ObjectStore` (``file:///path``), the embedded default.

Each object is a plain file at ``ROOT/KEY`` (mode 0600, directories 0700: backups hold
database contents), so a human can ``zstd -d`` it directly. Every valid key is accepted: a
segment that is too long for a file name or looks like one of the store's own files is
stored under a hashed name with its real name beside it (:mod:`datatier.storage.localnames`).
Writes go to ``.datatier-tmp.<id>.<name>`` in the target directory, are fsynced and renamed
into place (then the directory is fsynced): a killed writer leaves only the temp file, which
:meth:`LocalStore.list_incomplete_uploads` reports and ``abort_incomplete_uploads`` removes.

Storage class, metadata and tags are kept in a sidecar ``.datatier-meta.<name>.json`` written
only when one of them is not the default. The sidecar records the data file's inode and is
ignored when it does not match, so a crash between the two renames cannot attach new labels
to old data. The class is *recorded, not enforced*: every object is readable at once, an
archived one reports ``RestoreState.RESTORED`` and :meth:`request_restore` is a no-op.
A write the filesystem refuses (disk full, read-only, permissions) raises
ServiceUnavailable naming the store and the key. An object's ETag is its size and
modification time: every write gives a new one, a copy keeping times keeps it.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from datatier.errors import OperationFailed, ServiceUnavailable, UsageError
from datatier.storage.base import (
    IncompleteUpload,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ProgressCallback,
    RestoreState,
    RestoreTier,
    StorageClass,
)
from datatier.storage.localnames import (
    MAX_SEGMENT,
    META,
    TMP,
    disk_name,
    disk_path,
    forget,
    real_name,
    remember,
)


class LocalStore(ObjectStore):
    """Objects as files under ``root`` (created on first write)."""

    MAX_PART_SIZE = 2**62
    MAX_OBJECT_SIZE = 2**62
    MAX_SEGMENT = MAX_SEGMENT  # longer key segments are stored under a hashed name

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def check(self) -> None:
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise OperationFailed(f"local store {self.url}: {existing} is not a writable directory")

    def _path(self, key: str) -> Path:
        return disk_path(self.root, self.validate_key(key))

    # -- writing ---------------------------------------------------------------------------

    def put_stream(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        storage_class: StorageClass = StorageClass.STANDARD,
        metadata: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        size_hint: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        path = self._path(key)
        self.validate_labels(metadata, tags)
        klass = StorageClass.parse(storage_class)
        labels = {
            "storage_class": klass.value,
            "metadata": dict(metadata or {}),
            "tags": dict(tags or {}),
        }
        try:
            self._mkdirs(key)
            remember(path.parent, key.rpartition("/")[2])
            self._write(key, path, chunks, labels, on_progress)
        except OSError as exc:  # disk full, read-only, permissions: the store refuses
            raise ServiceUnavailable(
                f"local store {self.url} cannot write {key}: {exc.strerror or exc}"
            ) from None
        return self.head(key, tags=True)

    def _write(
        self,
        key: str,
        path: Path,
        chunks: Iterable[bytes],
        labels: dict[str, Any],
        on_progress: ProgressCallback | None,
    ) -> None:
        """Write ``chunks`` to a temp file beside ``path``, fsync, rename into place."""
        tmp = path.with_name(f"{TMP}{secrets.token_hex(4)}.{path.name}")
        try:
            with _create(tmp) as out:
                for chunk in chunks:
                    out.write(chunk)
                    if on_progress:
                        on_progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            if _has_labels(labels):  # sidecar first: it names the new inode, so it is
                self._write_sidecar(path, tmp.stat().st_ino, labels)  # ignored until the rename
            tmp.replace(path)
            if not _has_labels(labels):  # after the rename: the old sidecar now mismatches
                _sidecar(path).unlink(missing_ok=True)
        except IsADirectoryError:
            raise OperationFailed(f"{self.url}/{key}: a directory of that name exists") from None
        finally:
            with suppress(FileNotFoundError):
                tmp.unlink()
        _fsync_dir(path.parent)

    def _mkdirs(self, key: str) -> None:
        """Create the directories of ``key`` (each 0700; a hashed one's name file first)."""
        for new in [*reversed(self.root.parents), self.root]:  # mkdir(parents=) ignores mode
            if not new.exists():
                new.mkdir(mode=0o700, exist_ok=True)
        directory = self.root
        try:
            for segment in key.split("/")[:-1]:
                remember(directory, segment)
                directory = directory / disk_name(segment)
                directory.mkdir(mode=0o700, exist_ok=True)  # uploads run in parallel
        except (FileExistsError, NotADirectoryError):
            raise OperationFailed(
                f"{self.url}/{key}: a parent of this key is an object (file), not a directory"
            ) from None

    def _write_sidecar(self, path: Path, inode: int, labels: dict[str, Any]) -> None:
        """Atomically write the sidecar of ``path`` for the data file with ``inode``."""
        sidecar = _sidecar(path)
        tmp = sidecar.with_name(f"{TMP}{secrets.token_hex(4)}.{sidecar.name}")
        try:
            with _create(tmp) as out:
                out.write(json.dumps({"inode": inode, **labels}, sort_keys=True).encode())
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(sidecar)
        finally:
            with suppress(FileNotFoundError):
                tmp.unlink()

    # -- reading ---------------------------------------------------------------------------

    def iter_read(
        self, key: str, chunk_size: int = ObjectStore.DEFAULT_CHUNK_SIZE
    ) -> Iterator[bytes]:
        return self._read(key, self._path(key), chunk_size)

    def _read(self, key: str, path: Path, chunk_size: int) -> Iterator[bytes]:
        try:
            src = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"{self.url}/{key} does not exist") from None
        with src:
            while chunk := src.read(chunk_size):
                yield chunk

    def head(self, key: str, *, tags: bool = False) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"{self.url}/{key} does not exist") from None
        if not path.is_file():
            raise ObjectNotFound(f"{self.url}/{key} does not exist")
        labels = _read_sidecar(path, st.st_ino)
        klass = labels.get("storage_class", StorageClass.STANDARD.value)
        archived = klass in (StorageClass.GLACIER, StorageClass.DEEP_ARCHIVE)
        return ObjectInfo(
            key=key,
            size=st.st_size,
            storage_class=klass,
            etag=_etag(st),
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
            metadata=labels.get("metadata", {}),
            tags=labels.get("tags", {}) if tags else None,
            restore=RestoreState.RESTORED if archived else RestoreState.NONE,
        )

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.validate_prefix(prefix)
        start = prefix.rpartition("/")[0]
        for key, _ in self._walk(disk_path(self.root, start), start, want_tmp=False):
            if key.startswith(prefix):
                yield self.head(key)

    def _walk(self, directory: Path, rel: str, *, want_tmp: bool) -> Iterator[tuple[str, Path]]:
        """(key, file) under ``directory`` in S3 order (byte-wise by key, a directory sorting
        as ``name/``); with ``want_tmp``, (key of the directory + temp name, temp file)."""
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        named = []  # (key segment, is a directory, is a temp file, entry)
        for entry in entries:
            is_dir = entry.is_dir(follow_symlinks=False)
            if not is_dir and entry.name.startswith(TMP):
                named.append((entry.name, False, True, entry))
            elif (real := real_name(directory, entry.name)) is not None:
                named.append((real, is_dir, False, entry))
        named.sort(key=lambda item: (item[0] + "/" if item[1] else item[0]).encode())
        for name, is_dir, is_tmp, entry in named:
            key = f"{rel}/{name}" if rel else name
            if is_dir:
                yield from self._walk(Path(entry.path), key, want_tmp=want_tmp)
            elif want_tmp == is_tmp:
                yield key, Path(entry.path)

    # -- managing --------------------------------------------------------------------------

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            path = self._path(key)
            for victim in (_sidecar(path), path):
                with suppress(FileNotFoundError, NotADirectoryError):
                    victim.unlink()
            with suppress(NotADirectoryError):
                if not path.exists():
                    forget(path.parent, path.name)
            self._prune_dirs(path.parent)

    def _prune_dirs(self, directory: Path) -> None:
        """Remove empty directories from ``directory`` up to (not including) the root."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            forget(directory.parent, directory.name)
            directory = directory.parent

    def set_storage_class(self, key: str, storage_class: StorageClass) -> ObjectInfo:
        target = StorageClass.parse(storage_class)
        info = self.head(key, tags=True)
        if info.storage_class != target:
            path = self._path(key)
            labels = {
                "storage_class": target.value,
                "metadata": dict(info.metadata),
                "tags": dict(info.tags or {}),
            }
            if _has_labels(labels):
                self._write_sidecar(path, path.stat().st_ino, labels)
            else:
                _sidecar(path).unlink(missing_ok=True)
            _fsync_dir(path.parent)
        return self.head(key)

    def request_restore(
        self, key: str, *, days: int, tier: RestoreTier = RestoreTier.STANDARD
    ) -> ObjectInfo:
        if days < 1:
            raise UsageError(f"restore days must be at least 1, got {days}")
        return self.head(key)

    def list_incomplete_uploads(self, prefix: str = "") -> Iterator[IncompleteUpload]:
        """Temp files left by killed writers; ``upload_id`` is the temp file's path relative
        to the root, the key is the object's (or the store file's) it was to become."""
        self.validate_prefix(prefix)
        for tmp_key, tmp in self._walk(self.root, "", want_tmp=True):
            directory = tmp_key.rpartition("/")[0]
            final = tmp.name[len(TMP) :].partition(".")[2]
            name = real_name(tmp.parent, final) or final
            key = f"{directory}/{name}" if directory else name
            if key.startswith(prefix):
                with suppress(FileNotFoundError):
                    mtime = tmp.stat().st_mtime
                    rel = str(tmp.relative_to(self.root))
                    yield IncompleteUpload(key, rel, datetime.fromtimestamp(mtime, UTC))

    def abort_incomplete_uploads(
        self, prefix: str = "", *, initiated_before: datetime | None = None
    ) -> int:
        count = 0
        for up in list(self.list_incomplete_uploads(prefix)):
            if initiated_before and up.initiated and up.initiated >= initiated_before:
                continue
            with suppress(FileNotFoundError):
                (self.root / up.upload_id).unlink()
                count += 1
        return count


def _etag(st: os.stat_result) -> str:
    """The object's version tag: its size and modification time (ns). A write replaces
    the file (new time); a copy that keeps times (``cp -a``, ``rsync -a``) keeps it, unlike
    the inode, so a store moved that way still matches the ETags its manifests record."""
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}"'


def _has_labels(labels: dict[str, Any]) -> bool:
    """True unless the labels are all defaults (STANDARD, no metadata, no tags)."""
    return bool(
        labels["storage_class"] != StorageClass.STANDARD or labels["metadata"] or labels["tags"]
    )


def _create(path: Path) -> BinaryIO:
    """A new file, private to the owner (backups hold database contents)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _sidecar(path: Path) -> Path:
    return path.with_name(f"{META}{path.name}.json")


def _read_sidecar(path: Path, inode: int) -> dict[str, Any]:
    """The sidecar's labels if it belongs to this very file (same inode), else {}."""
    try:
        labels = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return labels if isinstance(labels, dict) and labels.get("inode") == inode else {}


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
