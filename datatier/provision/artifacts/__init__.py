"""Deploy artifacts rendered from the backup policies and the config: one
:class:`~datatier.provision.artifacts.base.Renderer` per consumer."""

from __future__ import annotations

from pathlib import Path

from datatier.provision.artifacts.ansible import AnsibleRenderer
from datatier.provision.artifacts.base import RenderContext, Renderer
from datatier.provision.artifacts.crontab import CrontabRenderer
from datatier.provision.artifacts.docker import DockerRenderer
from datatier.provision.artifacts.haproxy import HAProxyRenderer
from datatier.provision.artifacts.k8s import K8sRenderer
from datatier.provision.artifacts.systemd import SystemdRenderer


def renderers() -> dict[str, Renderer]:
    """Every renderer by CLI name, in ``render all`` order."""
    found: list[Renderer] = [
        CrontabRenderer(),
        SystemdRenderer(),
        K8sRenderer(),
        HAProxyRenderer(),
        DockerRenderer(),
        AnsibleRenderer(),
    ]
    return {r.name: r for r in found}


def render_all(ctx: RenderContext) -> dict[str, str]:
    """Every artifact's files (relative path -> text); any renderer's error stops it all."""
    files: dict[str, str] = {}
    for renderer in renderers().values():
        files.update(renderer.render(ctx))
    return files


def write_files(files: dict[str, str], out_dir: Path) -> list[Path]:
    """Write ``files`` under ``out_dir`` (atomically each); returns the paths written."""
    written = []
    for rel, text in sorted(files.items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(path)
    return written


__all__ = ["RenderContext", "Renderer", "render_all", "renderers", "write_files"]
