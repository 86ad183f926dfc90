"""Where the role puts things on the host (fixed at render time, as in the units), and the
names its tasks share."""

from __future__ import annotations

from dataclasses import dataclass

UNIT_DIR = "/etc/systemd/system"
RESTART = "Restart the datatier services"
RELOAD = "Reload systemd"


@dataclass(frozen=True)
class Layout:
    """Where things live on the host (fixed at render time, as in the units)."""

    config_path: str
    binary: str
    user: str

    @property
    def config_dir(self) -> str:
        return self.config_path.rsplit("/", 1)[0] or "/"

    @property
    def policies_dir(self) -> str:
        return f"{self.config_dir}/backups"

    @property
    def secrets_dir(self) -> str:
        return f"{self.config_dir}/secrets"

    @property
    def home(self) -> str:
        return f"/var/lib/{self.user}"
