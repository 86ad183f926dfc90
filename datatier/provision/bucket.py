"""The desired state of each S3 bucket the backups use, observed and applied through boto3.

Desired, per bucket named by the default store or a policy's store: the bucket exists,
versioning is Enabled, default encryption is ``provision.encryption`` (AES256, or aws:kms
with ``provision.kms_key_id``), all four public-access-block switches are on, and the
lifecycle holds the managed rules of :mod:`datatier.provision.lifecycle` (rules of other
owners are observed, fingerprinted and kept untouched). ``file://`` stores are skipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from datatier.backup.policy import Policy
from datatier.backup.stores import s3_settings
from datatier.config import Config
from datatier.errors import UsageError
from datatier.provision.lifecycle import MANAGED_PREFIX, LifecycleRule, rule_from_s3, store_rules
from datatier.provision.plan import Change, Provisioner
from datatier.storage.s3 import S3Store
from datatier.storage.s3wire import ErrorMapper
from datatier.storage.url import parse_store_url

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
ABSENT_ENCRYPTION = ("ServerSideEncryptionConfigurationNotFoundError",)
ABSENT_PAB = ("NoSuchPublicAccessBlockConfiguration",)
ABSENT_LIFECYCLE = ("NoSuchLifecycleConfiguration",)


@dataclass(frozen=True)
class BucketSpec:
    """What one bucket should look like."""

    bucket: str
    encryption: dict[str, str]
    rules: tuple[LifecycleRule, ...]

    def desired(self) -> dict[str, Any]:
        return {
            "exists": True,
            "versioning": "Enabled",
            "encryption": self.encryption,
            "public_access_block": dict(PUBLIC_ACCESS_BLOCK),
            "lifecycle": [r.to_json() for r in sorted(self.rules, key=lambda r: r.rule_id)],
        }


def bucket_specs(config: Config, policies: list[Policy]) -> list[BucketSpec]:
    """One spec per S3 bucket of the default store and the policies' stores, sorted."""
    prefixes: dict[str, dict[str, list[Policy]]] = defaultdict(lambda: defaultdict(list))
    urls = [config.backup.default_store, *(p.store_url for p in policies)]
    for url in urls:
        if urlsplit(url).scheme.lower() != "s3":
            continue
        _, bucket, prefix = parse_store_url(url)  # validates the URL; no S3 client
        prefixes[bucket].setdefault(prefix, [])
    for policy in policies:
        if urlsplit(policy.store_url).scheme.lower() == "s3":
            _, bucket, prefix = parse_store_url(policy.store_url)
            prefixes[bucket][prefix].append(policy)
    encryption = {"algorithm": config.provision.encryption}
    if config.provision.encryption == "aws:kms" and config.provision.kms_key_id:
        encryption["kms_key_id"] = config.provision.kms_key_id
    elif config.provision.kms_key_id:
        raise UsageError(
            "provision.kms_key_id is set but provision.encryption is AES256",
            hint='set provision.encryption = "aws:kms" or remove kms_key_id',
        )
    specs = []
    for bucket, stores in sorted(prefixes.items()):
        rules = [r for prefix, pols in sorted(stores.items()) for r in store_rules(prefix, pols)]
        specs.append(BucketSpec(bucket, encryption, tuple(rules)))
    return specs


class BucketProvisioner(Provisioner):
    """Observes and changes one bucket (see module docstring)."""

    kind = "bucket"

    def __init__(self, spec: BucketSpec, config: Config) -> None:
        self.spec = spec
        settings = s3_settings(config)
        self._store = S3Store(spec.bucket, "", settings)
        self.client: S3Client = self._store.client
        secrets = [s for s in (settings.access_key_id, settings.secret_access_key) if s]
        self._errors = ErrorMapper(
            self.resource, spec.bucket, settings.endpoint_url, settings.max_attempts, secrets
        )
        self.region = settings.region

    @property
    def resource(self) -> str:
        return f"s3://{self.spec.bucket}"

    # -- observe ------------------------------------------------------------------------

    def _get(self, action: str, call: Callable[[], Any], absent: tuple[str, ...]) -> Any:
        """``call()``'s reply, or None when S3 answers with one of the ``absent`` codes."""
        reply: Any = None
        with self._errors(action, None, bucket_op=True, ignore=absent):
            reply = call()
        return reply

    def exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.spec.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise self._errors.translate(exc, "check bucket", None) from exc
        except BotoCoreError as exc:
            raise self._errors.translate(exc, "check bucket", None) from exc
        return True

    def observe(self) -> dict[str, Any]:
        if not self.exists():
            return {"exists": False}
        b = self.spec.bucket
        versioning = self._get(
            "read versioning of", lambda: self.client.get_bucket_versioning(Bucket=b), ()
        )
        enc = self._get(
            "read encryption of",
            lambda: self.client.get_bucket_encryption(Bucket=b),
            ABSENT_ENCRYPTION,
        )
        pab = self._get(
            "read public access block of",
            lambda: self.client.get_public_access_block(Bucket=b),
            ABSENT_PAB,
        )
        life = self._get(
            "read lifecycle of",
            lambda: self.client.get_bucket_lifecycle_configuration(Bucket=b),
            ABSENT_LIFECYCLE,
        )
        encryption = None
        if enc:
            rules = enc["ServerSideEncryptionConfiguration"].get("Rules", [])
            default = rules[0].get("ApplyServerSideEncryptionByDefault", {}) if rules else {}
            if default:
                encryption = {"algorithm": default.get("SSEAlgorithm", "")}
                if default.get("KMSMasterKeyID"):
                    encryption["kms_key_id"] = default["KMSMasterKeyID"]
        rules = sorted(
            (rule_from_s3(r) for r in (life or {}).get("Rules", [])), key=lambda r: r.rule_id
        )
        return {
            "exists": True,
            "versioning": versioning.get("Status") or "Disabled",
            "encryption": encryption,
            "public_access_block": dict(pab["PublicAccessBlockConfiguration"]) if pab else None,
            "lifecycle": [r.to_json() for r in rules],
        }

    # -- diff ---------------------------------------------------------------------------

    def diff(self, observed: dict[str, Any]) -> list[Change]:
        desired = self.spec.desired()
        changes: list[Change] = []
        exists = bool(observed.get("exists"))
        if not exists:
            changes.append(Change(self.resource, "bucket", "create", None, self.spec.bucket))
        for item in ("versioning", "encryption", "public_access_block"):
            before = observed.get(item) if exists else None
            if before != desired[item]:
                action = "create" if before in (None, "Disabled") else "update"
                changes.append(Change(self.resource, item, action, before, desired[item]))
        ours = [r for r in observed.get("lifecycle", []) if r["id"].startswith(MANAGED_PREFIX)]
        if ours != desired["lifecycle"]:
            action = "create" if not ours else "update"
            changes.append(Change(self.resource, "lifecycle", action, ours, desired["lifecycle"]))
        return changes

    # -- apply --------------------------------------------------------------------------

    def apply_change(self, change: Change) -> None:
        b = self.spec.bucket
        with self._errors(f"set {change.item} of", None, bucket_op=change.item != "bucket"):
            if change.item == "bucket":
                args: dict[str, Any] = {"Bucket": b}
                if self.region != "us-east-1":
                    args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
                self.client.create_bucket(**args)
            elif change.item == "versioning":
                self.client.put_bucket_versioning(
                    Bucket=b, VersioningConfiguration={"Status": "Enabled"}
                )
            elif change.item == "encryption":
                default: dict[str, Any] = {"SSEAlgorithm": self.spec.encryption["algorithm"]}
                if "kms_key_id" in self.spec.encryption:
                    default["KMSMasterKeyID"] = self.spec.encryption["kms_key_id"]
                rule = {
                    "ApplyServerSideEncryptionByDefault": default,
                    "BucketKeyEnabled": default["SSEAlgorithm"] == "aws:kms",
                }
                self.client.put_bucket_encryption(
                    Bucket=b, ServerSideEncryptionConfiguration=cast(Any, {"Rules": [rule]})
                )
            elif change.item == "public_access_block":
                self.client.put_public_access_block(
                    Bucket=b,
                    PublicAccessBlockConfiguration=cast(Any, PUBLIC_ACCESS_BLOCK),
                )
            elif change.item == "lifecycle":
                self._put_lifecycle()
            else:
                raise UsageError(f"unknown bucket change {change.item!r} in plan")

    def _put_lifecycle(self) -> None:
        """Our rules plus every rule of another owner, exactly as S3 returned it."""
        b = self.spec.bucket
        current = self._get(
            "read lifecycle of",
            lambda: self.client.get_bucket_lifecycle_configuration(Bucket=b),
            ABSENT_LIFECYCLE,
        )
        foreign = [
            r
            for r in (current or {}).get("Rules", [])
            if not str(r.get("ID", "")).startswith(MANAGED_PREFIX)
        ]
        rules = foreign + [r.to_s3() for r in self.spec.rules]
        self.client.put_bucket_lifecycle_configuration(
            Bucket=b,
            LifecycleConfiguration=cast(Any, {"Rules": rules}),
        )
