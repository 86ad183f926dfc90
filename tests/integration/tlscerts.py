"""A certificate authority made with openssl for the TLS tests: a CA, a server certificate
for 127.0.0.1, a client certificate, and a second CA that signed none of them."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import unavailable


@dataclass(frozen=True)
class Certs:
    dir: Path

    def __getitem__(self, name: str) -> str:
        return str(self.dir / f"{name}.pem")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(cwd: Path, name: str, subject: str, san: str | None, ca: str = "ca") -> None:
    """``name.pem`` and ``name-key.pem`` signed by ``ca``."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem",
            "-out", f"{name}.csr", "-subj", subject, cwd=cwd)  # fmt: skip
    ext = cwd / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", str(ext),
            cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module", name="ca_files")
def ca_files_fixture(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if shutil.which("openssl") is None:
        unavailable("openssl is needed to make the test CA")
    cwd = tmp_path_factory.mktemp("tls")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}-key.pem",
                "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN=datatier test {ca}",
                cwd=cwd)  # fmt: skip
    issue(cwd, "server", "/CN=127.0.0.1", "IP:127.0.0.1")
    issue(cwd, "client", "/CN=datatier", None)
    return Certs(cwd)
