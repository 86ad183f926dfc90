"""Helpers of the encryption tests: age keys on disk, the environment that turns encryption
on, and a search of stored objects for plaintext."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import zstandard
from pyrage import x25519

from datatier.cli import main
from datatier.storage.base import ObjectStore
from tests.integration.physical_support import Result

MARKER = f"crypt-marker-{secrets.token_hex(24)}".encode()
"""A row value no stored object may show: random per run, so only the data can hold it."""


@dataclass(frozen=True)
class Key:
    """An age key pair: the identity file on disk and the public key."""

    path: Path
    public: str
    secret: str


def make_key(directory: Path, name: str) -> Key:
    identity = x25519.Identity.generate()
    path = directory / f"{name}.key"
    path.write_text(f"# {name}\n{identity}\n")
    path.chmod(0o600)
    return Key(path, str(identity.to_public()), str(identity))


def identity_file(directory: Path, name: str, *keys: Key) -> Path:
    """One identity file holding several keys (as after a rotation)."""
    path = directory / f"{name}.keys"
    path.write_text("".join(f"# key {i}\n{k.secret}\n" for i, k in enumerate(keys)))
    path.chmod(0o600)
    return path


def encryption_env(recipients: list[Key], identity: Path | None = None) -> dict[str, str]:
    """``DATATIER_*`` variables: encrypt to ``recipients``, decrypt with ``identity``."""
    env = {"DATATIER_ENCRYPTION__RECIPIENTS": ",".join(k.public for k in recipients)}
    if identity is not None:
        env["DATATIER_ENCRYPTION__IDENTITY_FILE"] = str(identity)
    return env


def windows(marker: bytes, width: int = 8) -> list[bytes]:
    return [marker[i : i + width] for i in range(len(marker) - width + 1)]


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def plaintext_in(store: ObjectStore, prefix: str, marker: bytes = MARKER) -> list[str]:
    """Keys under ``prefix`` whose stored bytes contain any 8-byte piece of ``marker``, as
    stored or, for a zstd object, once decompressed (compression alone hides the marker's
    bytes: encryption must hide them from anyone who can decompress)."""
    pieces = windows(marker)
    found = []
    for info in store.list_objects(prefix):
        data = b"".join(store.iter_read(info.key))
        if data.startswith(ZSTD_MAGIC):
            data = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read()
        if any(piece in data for piece in pieces):
            found.append(info.key)
    return found


def decrypt(data: bytes, key: Key) -> bytes:
    """``age -d -i KEY | zstd -d`` of ``data`` (the stock tools)."""
    plain = subprocess.run(
        ["age", "-d", "-i", str(key.path)], input=data, capture_output=True, check=True
    ).stdout
    return subprocess.run(["zstd", "-dc"], input=plain, capture_output=True, check=True).stdout


ENCRYPTION_VARS = (
    "DATATIER_ENCRYPTION__RECIPIENTS",
    "DATATIER_ENCRYPTION__IDENTITY",
    "DATATIER_ENCRYPTION__IDENTITY_FILE",
)


def cli(config: Path, env: dict[str, str], *args: str) -> Result:
    """``datatier --config CONFIG ARGS`` in-process with exactly ``env``'s encryption
    settings (the others unset) and ``env``'s other variables, all restored after; its exit
    code, stdout and stderr."""
    names = set(ENCRYPTION_VARS) | set(env)
    saved = {name: os.environ.pop(name, None) for name in names}
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--config", str(config), *args])
    finally:
        for name in names:  # every variable set here, not only the encryption ones
            os.environ.pop(name, None)
            if saved[name] is not None:
                os.environ[name] = saved[name]  # type: ignore[assignment]
    return Result(code, out.getvalue(), err.getvalue())
