"""Kubernetes CronJobs, one per policy: ``concurrencyPolicy: Forbid`` (a run never starts
while the previous one is active), secrets as environment variables from a Secret (the
``DATATIER_SECTION__KEY`` overrides), config and policies from a ConfigMap."""

from __future__ import annotations

from typing import Any

from datatier.provision.artifacts import archiver
from datatier.provision.artifacts.base import RenderContext, Renderer, dns_name, need_policies
from datatier.provision.artifacts.schedule import policy_schedule
from datatier.provision.artifacts.yamltext import dump_all

FILE = "k8s/cronjobs.yaml"
# Environment variable -> key in the Secret. Optional: a key the Secret lacks is not set.
SECRET_ENV = {
    "DATATIER_MYSQL__PASSWORD": "mysql-password",
    "DATATIER_MONGO__PASSWORD": "mongo-password",
    "DATATIER_S3__ACCESS_KEY_ID": "s3-access-key-id",
    "DATATIER_S3__SECRET_ACCESS_KEY": "s3-secret-access-key",
}


class K8sRenderer(Renderer):
    name = "k8s"
    description = "Kubernetes CronJob per policy (concurrencyPolicy: Forbid)"

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
            env: list[Any] = [
                {"name": "DATATIER_CONFIG", "value": ctx.config_path},
                {"name": "DATATIER_BACKUP__POLICIES_DIR", "value": f"{config_dir}/backups"},
            ]
            env += [
                {
                    "name": var,
                    "valueFrom": {
                        "secretKeyRef": {"name": ctx.secret_name, "key": key, "optional": True}
                    },
                }
                for var, key in SECRET_ENV.items()
            ]
            container = {
                "name": "backup",
                "image": ctx.image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/sh", "-c"],
                "args": [
                    f"datatier backup run {policy.name} && "
                    f"datatier backups prune {policy.name} --execute"
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
        return {FILE: header + dump_all(docs), **archiver.k8s_files(ctx, env, items)}
