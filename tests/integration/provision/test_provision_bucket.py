"""`provision plan` / `apply --execute` against the sandbox's S3 server (moto).

moto stores and returns versioning, default encryption, the public access block and
lifecycle rules as AWS does, but never *applies* lifecycle rules (objects do not change
class) and does not validate transition days or order: the refusals of impossible
lifecycles are datatier's own checks, asserted here to change nothing on the server.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from datatier.cli import main
from datatier.sandbox import process
from tests.integration.conftest import SandboxHandle, unavailable

POLICY = """\
engine = "mysql"
schedule = "15 2 * * *"
store = "s3://{bucket}/nightly"
[source]
node = "replica1"
[storage]
initial_class = "{initial}"
archive_class = "{archive}"
archive_after_days = {days}
"""


class BucketEnv:
    def __init__(self, sandbox: SandboxHandle, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.bucket = f"prov-{secrets.token_hex(4)}"
        self.policies = root / "backups"
        self.policies.mkdir()
        cfg = sandbox.config.s3
        self.s3: Any = boto3.client(
            "s3",
            endpoint_url=cfg.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=cfg.access_key_id.reveal(),
            aws_secret_access_key=cfg.secret_access_key.reveal(),
        )
        monkeypatch.setenv("DATATIER_CONFIG", str(sandbox.config_path))
        monkeypatch.setenv("DATATIER_BACKUP__POLICIES_DIR", str(self.policies))
        monkeypatch.setenv("DATATIER_BACKUP__DEFAULT_STORE", f"s3://{self.bucket}/nightly")

    def policy(self, initial: str = "STANDARD", archive: str = "GLACIER", days: int = 30) -> None:
        text = POLICY.format(bucket=self.bucket, initial=initial, archive=archive, days=days)
        (self.policies / "shop.toml").write_text(text)

    def exists(self) -> bool:
        return self.bucket in {b["Name"] for b in self.s3.list_buckets()["Buckets"]}


@pytest.fixture
def env(sandbox: SandboxHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BucketEnv:
    return BucketEnv(sandbox, tmp_path, monkeypatch)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_apply_then_no_changes(env: BucketEnv, capsys: pytest.CaptureFixture[str]) -> None:
    env.policy()
    code, out, _ = run(capsys, "provision", "plan", "--only", "bucket")
    assert code == 0
    assert f"s3://{env.bucket} (bucket): 5 change(s)" in out
    assert "+ bucket" in out and "+ versioning: Disabled" not in out
    assert not env.exists(), "plan changed nothing"
    code, out, _ = run(capsys, "provision", "apply", "--only", "bucket")
    assert code == 0 and "Dry run: nothing was changed" in out and not env.exists()

    code, out, _ = run(capsys, "provision", "apply", "--only", "bucket", "--execute")
    assert code == 0 and "Applied 5 change(s)." in out
    s3, b = env.s3, env.bucket
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    enc = s3.get_bucket_encryption(Bucket=b)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    pab = s3.get_public_access_block(Bucket=b)["PublicAccessBlockConfiguration"]
    assert pab == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]}
    assert set(rules) == {"datatier-housekeeping-nightly", "datatier-archive-nightly-shop"}
    house = rules["datatier-housekeeping-nightly"]
    assert house["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert house["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    archive = rules["datatier-archive-nightly-shop"]
    assert archive["Transitions"] == [{"Days": 30, "StorageClass": "GLACIER"}]
    assert archive["Filter"]["And"]["Prefix"] == "nightly/shop/"
    assert archive["Filter"]["And"]["Tags"] == [{"Key": "datatier-kind", "Value": "data"}]

    code, out, _ = run(capsys, "provision", "plan", "--only", "bucket")
    assert code == 0 and "No changes" in out and "in sync" in out


def test_apply_changes_only_the_difference_and_keeps_foreign_rules(
    env: BucketEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env.policy(archive="DEEP_ARCHIVE", days=90)
    s3, b = env.s3, env.bucket
    s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    foreign = {"ID": "logs-expiry", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
               "Expiration": {"Days": 7}}  # fmt: skip
    s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [foreign]})
    code, out, _ = run(capsys, "provision", "plan", "--only", "bucket", "--json")
    items = [c["item"] for c in json.loads(out)["resources"][0]["changes"]]
    assert items == ["encryption", "public_access_block", "lifecycle"]
    assert run(capsys, "provision", "apply", "--only", "bucket", "--execute")[0] == 0
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]}
    assert rules["logs-expiry"]["Expiration"] == {"Days": 7}
    assert rules["datatier-archive-nightly-shop"]["Transitions"] == [
        {"Days": 90, "StorageClass": "DEEP_ARCHIVE"}
    ]
    # drift: someone suspends versioning; the next plan finds exactly that
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    code, out, _ = run(capsys, "provision", "plan", "--only", "bucket")
    assert code == 0
    assert "~ versioning: Suspended -> Enabled" in out and "1 change(s)" in out


def test_apply_of_a_stale_plan_is_refused(
    env: BucketEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.policy()
    plan = tmp_path / "plan.json"
    assert run(capsys, "provision", "plan", "--only", "bucket", "--out", str(plan))[0] == 0
    # the world changes: someone else creates the bucket with versioning on
    env.s3.create_bucket(Bucket=env.bucket)
    env.s3.put_bucket_versioning(Bucket=env.bucket, VersioningConfiguration={"Status": "Enabled"})
    code, _, err = run(capsys, "provision", "apply", "--plan", str(plan), "--execute")
    assert code == 2
    assert f"s3://{env.bucket} changed since the plan was made" in err
    assert "nothing was changed" in err
    with pytest.raises(ClientError):
        env.s3.get_public_access_block(Bucket=env.bucket)
    with pytest.raises(ClientError):
        env.s3.get_bucket_lifecycle_configuration(Bucket=env.bucket)
    # a fresh plan of the same world applies
    assert run(capsys, "provision", "plan", "--only", "bucket", "--out", str(plan))[0] == 0
    code, out, _ = run(capsys, "provision", "apply", "--plan", str(plan), "--execute")
    assert code == 0 and "Applied 3 change(s)." in out


def test_a_plan_is_refused_when_the_policies_changed_since(
    env: BucketEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.policy(days=30)
    plan = tmp_path / "plan.json"
    assert run(capsys, "provision", "plan", "--only", "bucket", "--out", str(plan))[0] == 0
    assert run(capsys, "provision", "apply", "--plan", str(plan), "--execute")[0] == 0
    env.policy(days=60)  # reviewed: transition after 60 days
    assert run(capsys, "provision", "plan", "--only", "bucket", "--out", str(plan))[0] == 0
    env.policy(days=10)  # edited after the review: the plan must not write 10 days
    code, _, err = run(capsys, "provision", "apply", "--plan", str(plan), "--execute")
    assert code == 2, err
    assert f"the configuration of s3://{env.bucket} changed since the plan was made" in err
    assert "nothing was changed" in err
    rules = {
        r["ID"]: r for r in env.s3.get_bucket_lifecycle_configuration(Bucket=env.bucket)["Rules"]
    }
    assert rules["datatier-archive-nightly-shop"]["Transitions"] == [
        {"Days": 30, "StorageClass": "GLACIER"}
    ]


def test_a_change_failing_after_others_says_what_was_applied(
    env: BucketEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The bucket's five changes are made, then a MySQL migration fails (exit 1)."""
    env.policy()
    mysql_dir = tmp_path / "mysql"
    mysql_dir.mkdir()
    version = f"{time.time_ns()}_fails.sql"
    (mysql_dir / version).write_text("SELECT * FROM prov_no_such_db.t;\n")
    monkeypatch.setenv("DATATIER_PROVISION__MYSQL_SCHEMAS_DIR", str(mysql_dir))
    monkeypatch.setenv("DATATIER_PROVISION__MONGO_SCHEMAS_DIR", str(tmp_path / "none"))
    args = ("provision", "apply", "--only", "bucket,mysql", "--execute")
    code, out, err = run(capsys, *args)
    assert code == 1, err
    assert f"{version} failed on primary" in err
    assert "applied 5 of 6 changes (" in err and f"s3://{env.bucket} lifecycle" in err
    assert f"mysql primary migration {version} failed" in err
    assert "run `datatier provision plan` to see what is left" in err
    assert out.count("  + ") == 5, "each change made was printed"
    # drift, then again with --json: the versioning change is made, listed, then the failure
    env.s3.put_bucket_versioning(Bucket=env.bucket, VersioningConfiguration={"Status": "Suspended"})
    code, out, err = run(capsys, *args, "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False and doc["exit_code"] == 1
    assert [(c["resource"], c["item"]) for c in doc["changes"]] == [
        (f"s3://{env.bucket}", "versioning")
    ]
    assert "applied 1 of 2 changes" in doc["error"]
    assert env.s3.get_bucket_versioning(Bucket=env.bucket)["Status"] == "Enabled"


@pytest.mark.parametrize(
    ("initial", "archive", "days", "message"),
    [
        ("DEEP_ARCHIVE", "GLACIER", 30, "GLACIER is not colder than initial_class DEEP_ARCHIVE"),
        ("STANDARD_IA", "GLACIER", 10, "objects must stay 30 days in STANDARD_IA"),
    ],
)
def test_impossible_lifecycles_are_refused(
    env: BucketEnv,
    capsys: pytest.CaptureFixture[str],
    initial: str,
    archive: str,
    days: int,
    message: str,
) -> None:
    env.policy(initial=initial, archive=archive, days=days)
    for command in (["plan"], ["apply", "--execute"]):
        code, _, err = run(capsys, "provision", *command, "--only", "bucket")
        assert code == 2, err
        assert "shop.toml: storage" in err and message in err
    assert not env.exists(), "nothing was created"


# -- S3 AccessDenied, from a moto server that enforces IAM ----------------------------------


@pytest.fixture
def iam_moto(tmp_path: Path, test_port_base: int) -> Iterator[str]:
    """A second moto server (own port) whose IAM authorisation is switched on after set-up.

    Port ``test_port_base + 61`` (``DATATIER_TEST_IAM_MOTO_PORT`` overrides): +0..+9 are the
    sandbox's, +20..+27 test_sandbox's second sandbox, +50..+59 test_cache's, +60 the
    fourth MariaDB of test_provision_replica."""
    port = int(os.environ.get("DATATIER_TEST_IAM_MOTO_PORT") or test_port_base + 61)
    if not process.port_free("127.0.0.1", port):
        unavailable(f"port {port} for the IAM-enforcing moto server is taken")
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    record = process.start(argv, tmp_path / "moto.log", cwd=tmp_path)
    try:
        if not process.wait_until(lambda: process.port_open("127.0.0.1", port), 15):
            unavailable(f"moto did not start: {process.tail(tmp_path / 'moto.log')}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop([record])


def test_s3_access_denied_changes_nothing(
    env: BucketEnv,
    iam_moto: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    admin = dict(endpoint_url=iam_moto, region_name="us-east-1",
                 aws_access_key_id="admin", aws_secret_access_key="admin")  # fmt: skip
    iam = boto3.client("iam", **admin)  # type: ignore[call-overload]
    iam.create_user(UserName="reader")
    # Read-only. moto checks its own action "s3:HeadBucket" for HEAD (AWS: s3:ListBucket).
    statement = {"Effect": "Allow", "Action": ["s3:Get*", "s3:List*", "s3:HeadBucket"],
                 "Resource": "*"}  # fmt: skip
    iam.put_user_policy(
        UserName="reader",
        PolicyName="read-only",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    boto3.client("s3", **admin).create_bucket(Bucket=env.bucket)  # type: ignore[call-overload]
    request = urllib.request.Request(
        f"{iam_moto}/moto-api/reset-auth", b"0", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request, timeout=5).read()  # from now on IAM is enforced
    env.policy()
    monkeypatch.setenv("DATATIER_S3__ENDPOINT_URL", iam_moto)
    monkeypatch.setenv("DATATIER_S3__ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("DATATIER_S3__SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setenv("DATATIER_S3__MAX_ATTEMPTS", "1")
    code, out, _ = run(capsys, "provision", "plan", "--only", "bucket")
    assert code == 0 and "4 change(s)" in out, "reading is allowed"
    started = time.monotonic()
    code, _, err = run(capsys, "provision", "apply", "--only", "bucket", "--execute")
    assert code == 3, err
    assert "S3 denied access" in err and "set versioning of" in err
    assert key["SecretAccessKey"] not in err
    assert time.monotonic() - started < 30
    reader = boto3.client(
        "s3", endpoint_url=iam_moto, region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
    )  # fmt: skip
    assert "Status" not in reader.get_bucket_versioning(Bucket=env.bucket)
    with pytest.raises(ClientError):
        reader.get_public_access_block(Bucket=env.bucket)


def test_kms_default_encryption(
    env: BucketEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # moto records the key id as given; it does not check that the KMS key exists.
    key = "arn:aws:kms:us-east-1:123456789012:key/0c5f6a3e-datatier-test"
    monkeypatch.setenv("DATATIER_PROVISION__ENCRYPTION", "aws:kms")
    monkeypatch.setenv("DATATIER_PROVISION__KMS_KEY_ID", key)
    env.policy()
    assert run(capsys, "provision", "apply", "--only", "bucket", "--execute")[0] == 0
    rule = env.s3.get_bucket_encryption(Bucket=env.bucket)["ServerSideEncryptionConfiguration"]
    default = rule["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert default == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
    code, out, _ = run(capsys, "provision")  # plan is the default
    assert code == 0 and "No changes" in out
    monkeypatch.setenv("DATATIER_PROVISION__ENCRYPTION", "AES256")
    code, _, err = run(capsys, "provision", "plan", "--only", "bucket")
    assert code == 2 and "kms_key_id is set but provision.encryption is AES256" in err
    monkeypatch.delenv("DATATIER_PROVISION__KMS_KEY_ID")
    code, out, _ = run(capsys, "provision", "plan", "--only", "bucket")
    assert code == 0 and '~ encryption: {"algorithm": "aws:kms"' in out
