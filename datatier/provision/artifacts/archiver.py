"""The binlog archiver as a Kubernetes Deployment of exactly one replica (two archivers would
fight over the same replica ID); its systemd unit is one of the always-on services of
:mod:`datatier.provision.artifacts.systemd`. Rendered only when the config names
``binlog.policy``."""

from __future__ import annotations

from typing import Any

from datatier.provision.artifacts.base import RenderContext
from datatier.provision.artifacts.yamltext import dump_all

K8S_FILE = "k8s/binlog-archiver.yaml"


def k8s_files(ctx: RenderContext, env: list[Any], items: list[Any]) -> dict[str, str]:
    """A Deployment (one replica, ``Recreate``: never two at once) with the CronJobs' env
    (``env``: config path and secrets) and ConfigMap ``items``."""
    if not ctx.binlog_policy:
        return {}
    config_dir = ctx.config_path.rsplit("/", 1)[0] or "/"
    labels = {
        "app.kubernetes.io/name": "datatier",
        "app.kubernetes.io/component": "binlog-archiver",
    }
    container = {
        "name": "binlog-archiver",
        "image": ctx.image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["binlog", "archive"],
        "env": env,
        "volumeMounts": [{"name": "config", "mountPath": config_dir, "readOnly": True}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "datatier-binlog-archiver",
            "namespace": ctx.namespace,
            "labels": labels,
        },
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 120,
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": ctx.configmap, "items": items}}
                    ],
                },
            },
        },
    }
    header = (
        "# Rendered by `datatier deploy render k8s`: the binlog archiver (point-in-time\n"
        f"# recovery into policy {ctx.binlog_policy}'s store); same ConfigMap and Secret as\n"
        "# the CronJobs. One replica, Recreate: two archivers must never run at once.\n"
    )
    return {K8S_FILE: header + dump_all([deployment])}
