"""Kubernetes manifests: a CronJob per policy (``concurrencyPolicy: Forbid``: a run never
starts while the previous one is active) and, always on, a Deployment for the heartbeat
writer and one for the health endpoint (one port per MySQL node, behind a Service), both
with liveness and readiness probes on ``/health``. Secrets come as environment variables
from a Secret (the ``DATATIER_SECTION__KEY`` overrides), config and policies from a
ConfigMap. CronJobs run in ``Etc/UTC``."""

from __future__ import annotations

import shlex
from typing import Any

from datatier.provision.artifacts import archiver
from datatier.provision.artifacts.base import RenderContext, Renderer, dns_name, need_policies
from datatier.provision.artifacts.schedule import policy_schedule
from datatier.provision.artifacts.yamltext import dump_all

FILE = "k8s/cronjobs.yaml"
ALWAYS_ON_FILE = "k8s/always-on.yaml"
HEARTBEAT_PORT = 8080
# Environment variable -> key in the Secret. Optional: a key the Secret lacks is not set.
SECRET_ENV = {
    "DATATIER_MYSQL__PASSWORD": "mysql-password",
    "DATATIER_MONGO__PASSWORD": "mongo-password",
    "DATATIER_S3__ACCESS_KEY_ID": "s3-access-key-id",
    "DATATIER_S3__SECRET_ACCESS_KEY": "s3-secret-access-key",
}


class K8sRenderer(Renderer):
    name = "k8s"
    description = "Kubernetes CronJob per policy; heartbeat and health Deployments with probes"

    def render(self, ctx: RenderContext) -> dict[str, str]:
        need_policies(ctx, "Kubernetes CronJobs")
        config_dir = ctx.config_path.rsplit("/", 1)[0] or "/"
        docs: list[Any] = []
        # A ConfigMap is flat: its keys are mapped to datatier.toml and backups/NAME.toml.
        items = [{"key": "datatier.toml", "path": "datatier.toml"}] + [
            {"key": f"{p.name}.toml", "path": f"backups/{p.name}.toml"} for p in ctx.policies
        ]
        for policy in ctx.policies:
            schedule = policy_schedule(policy)
            name = dns_name("datatier-backup", policy.name)
            env = _env(ctx, config_dir)
            container = {
                "name": "backup",
                "image": ctx.image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/sh", "-c"],
                "args": [
                    f"{shlex.join(ctx.backup_command(policy, 'datatier'))} && "
                    f"{shlex.join(ctx.prune_command(policy, 'datatier'))}"
                ],
                "env": env,
                "volumeMounts": [{"name": "config", "mountPath": config_dir, "readOnly": True}],
                "resources": {
                    "requests": {"cpu": "250m", "memory": "256Mi"},
                    "limits": {"memory": "512Mi"},
                },
                "securityContext": {
                    "runAsNonRoot": True,
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": False,
                },
            }
            docs.append(
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "metadata": {
                        "name": name,
                        "namespace": ctx.namespace,
                        "labels": {
                            "app.kubernetes.io/name": "datatier",
                            "app.kubernetes.io/component": "backup",
                            "datatier/policy": policy.name,
                        },
                    },
                    "spec": {
                        "schedule": schedule.expr,
                        "timeZone": "Etc/UTC" if ctx.timezone == "UTC" else ctx.timezone,
                        "concurrencyPolicy": "Forbid",
                        "startingDeadlineSeconds": 3600,
                        "successfulJobsHistoryLimit": 3,
                        "failedJobsHistoryLimit": 5,
                        "jobTemplate": {
                            "spec": {
                                "backoffLimit": 0,
                                "activeDeadlineSeconds": 43200,
                                "template": {
                                    "metadata": {"labels": {"datatier/policy": policy.name}},
                                    "spec": {
                                        "restartPolicy": "Never",
                                        "containers": [container],
                                        "volumes": [
                                            {
                                                "name": "config",
                                                "configMap": {
                                                    "name": ctx.configmap,
                                                    "items": items,
                                                },
                                            }
                                        ],
                                    },
                                },
                            }
                        },
                    },
                }
            )
        header = (
            "# Rendered by `datatier deploy render k8s` from the backup policies.\n"
            f"# ConfigMap {ctx.configmap}: datatier.toml and the policy files (mounted as\n"
            f"# {config_dir}/backups/NAME.toml), e.g.\n"
            f"#   kubectl -n {ctx.namespace} create configmap {ctx.configmap} "
            "--from-file=datatier.toml --from-file=backups/\n"
            f"# Secret {ctx.secret_name}: keys {', '.join(SECRET_ENV.values())} (each optional).\n"
        )
        return {
            FILE: header + dump_all(docs),
            ALWAYS_ON_FILE: header + dump_all(always_on(ctx, items)),
            **archiver.k8s_files(ctx, _env(ctx, config_dir), items),
        }


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "datatier", "app.kubernetes.io/component": component}


def _env(ctx: RenderContext, config_dir: str) -> list[Any]:
    env: list[Any] = [
        {"name": "DATATIER_CONFIG", "value": ctx.config_path},
        {"name": "DATATIER_BACKUP__POLICIES_DIR", "value": f"{config_dir}/backups"},
    ]
    return env + [
        {
            "name": var,
            "valueFrom": {"secretKeyRef": {"name": ctx.secret_name, "key": key, "optional": True}},
        }
        for var, key in SECRET_ENV.items()
    ]


def _probe(port: int, initial: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": port},
        "initialDelaySeconds": initial,
        "periodSeconds": 10,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }


def _deployment(
    ctx: RenderContext,
    component: str,
    args: list[str],
    ports: list[tuple[str, int]],
    items: list[Any],
    *,
    replicas: int,
) -> dict[str, Any]:
    config_dir = ctx.config_path.rsplit("/", 1)[0] or "/"
    probe_port = ports[0][1]
    container = {
        "name": component,
        "image": ctx.image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": _env(ctx, config_dir),
        "ports": [{"name": name, "containerPort": port} for name, port in ports],
        "livenessProbe": _probe(probe_port, 15),
        "readinessProbe": _probe(probe_port, 5),
        "volumeMounts": [{"name": "config", "mountPath": config_dir, "readOnly": True}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "96Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
    }
    name = f"datatier-{component}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ctx.namespace, "labels": _labels(component)},
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "Recreate"} if replicas == 1 else {"type": "RollingUpdate"},
            "selector": {"matchLabels": _labels(component)},
            "template": {
                "metadata": {"labels": _labels(component)},
                "spec": {
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": ctx.configmap, "items": items}}
                    ],
                },
            },
        },
    }


def always_on(ctx: RenderContext, items: list[Any]) -> list[Any]:
    """The heartbeat Deployment (one writer: ``health serve --heartbeat``, whose /health
    fails if the writer's thread dies), the health Deployment (two replicas, a port per
    node) and the health Service HAProxy checks."""
    listens = ctx.health_listens("0.0.0.0")  # noqa: S104 - inside the pod
    ports = [(f"health-{i}", port) for i, port in enumerate(ctx.layout().health_ports.values())]
    heartbeat = _deployment(
        ctx,
        "heartbeat",
        ["health", "serve", "--heartbeat", "--listen", f"0.0.0.0:{HEARTBEAT_PORT}"],
        [("health", HEARTBEAT_PORT)],
        items,
        replicas=1,
    )
    health = _deployment(ctx, "health", ["health", "serve", *listens], ports, items, replicas=2)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "datatier-health",
            "namespace": ctx.namespace,
            "labels": _labels("health"),
        },
        "spec": {
            "selector": _labels("health"),
            "ports": [
                {"name": name, "port": port, "targetPort": port, "protocol": "TCP"}
                for name, port in ports
            ],
        },
    }
    return [heartbeat, health, service]
