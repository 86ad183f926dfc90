"""Which resources ``datatier provision`` manages for a configuration, by kind."""

from __future__ import annotations

from datatier.backup.policy import find_policies
from datatier.backup.service import policies_dir
from datatier.config import LoadedConfig
from datatier.errors import UsageError
from datatier.provision.plan import Provisioner

KINDS = ("bucket", "mysql", "mongo")


def provisioners(loaded: LoadedConfig, kinds: tuple[str, ...] = KINDS) -> list[Provisioner]:
    """The provisioners of ``kinds``: one per S3 bucket, the MySQL primary's schema when
    ``provision.mysql_schemas_dir`` holds ``*.sql`` files, MongoDB's when
    ``provision.mongo_schemas_dir`` holds ``*.json`` files."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise UsageError(f"unknown resource kind(s): {', '.join(unknown)} (use {', '.join(KINDS)})")
    config = loaded.config
    found: list[Provisioner] = []
    if "bucket" in kinds:
        policies = find_policies(policies_dir(loaded), config.backup.default_store)
        from datatier.provision.bucket import BucketProvisioner, bucket_specs  # lazy: boto3

        found += [BucketProvisioner(spec, config) for spec in bucket_specs(config, policies)]
    if "mysql" in kinds:
        from datatier.provision.schema_mysql import MySQLSchemas, mysql_migrations

        migrations = mysql_migrations(loaded.resolve(config.provision.mysql_schemas_dir))
        if migrations:
            found.append(MySQLSchemas(config.mysql, migrations))
    if "mongo" in kinds:
        from datatier.provision.schema_mongo import MongoSchemas, mongo_specs

        specs = mongo_specs(loaded.resolve(config.provision.mongo_schemas_dir))
        if specs:
            found.append(MongoSchemas(config.mongo, specs))
    return found
