"""Point-in-time Mongo backups on a real MongoDB replica set: two collections written in
lockstep during the dump end at the same point after restore. Collected only where
``DATATIER_TEST_MONGO_URI`` names a replica-set member (no mongod can be installed on these
machines). The writer scenario (inserts, updates, deletes, a drop during the dump; copy equal
to the source at the dump's end) runs in test_mongo_pitr.py against the sandbox's mongo2 and,
with that variable set, against the real server too."""

from __future__ import annotations

import os
import threading
from typing import Any

import pymongo
import pytest

from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from tests.integration.conftest import SandboxHandle

pytestmark = pytest.mark.integration
URI = os.environ.get("DATATIER_TEST_MONGO_URI")

if URI:

    def test_restore_reaches_one_point_in_time(
        use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two collections written in lockstep during the backup: without the oplog the
        later-dumped one is far ahead; with it both end at the slice's end (differ by at
        most the one write in flight) and no id is missing."""
        assert URI is not None
        monkeypatch.setenv("DATATIER_MONGO__URI", URI)
        c: pymongo.MongoClient[Any] = pymongo.MongoClient(URI, serverSelectionTimeoutMS=3000)
        assert c.admin.command("hello").get("setName"), "DATATIER_TEST_MONGO_URI: no replica set"
        for name in ("dt_pitr", "dt_pitr_copy"):
            c.drop_database(name)
        c.dt_pitr.a.insert_many([{"_id": i, "pad": "x" * 200} for i in range(20_000)])
        c.dt_pitr.b.insert_many([{"_id": i, "pad": "x" * 200} for i in range(20_000)])
        stop = threading.Event()

        def lockstep() -> None:
            i = 20_000
            while not stop.is_set():
                c.dt_pitr.a.insert_one({"_id": i})
                c.dt_pitr.b.insert_one({"_id": i})
                i += 1

        writer = threading.Thread(target=lockstep)
        use_sandbox_config.write_policy(
            "mongo-pitr", 'engine = "mongo"\n[source]\ndatabases = ["dt_pitr"]\n'
        )
        loaded = load(str(use_sandbox_config.config_path))
        writer.start()
        try:
            manifest = run_backup(loaded, load_policy(loaded, "mongo-pitr"))
        finally:
            stop.set()
            writer.join()
        assert manifest.consistency["point_in_time"] is True
        assert manifest.consistency["oplog_entries"] > 0
        assert any(o.kind == "oplog" for o in manifest.objects)
        assert main(["restore", manifest.backup_id, "--rename", "dt_pitr=dt_pitr_copy"]) == 0
        ids_a = sorted(d["_id"] for d in c.dt_pitr_copy.a.find({}, {"_id": 1}))
        ids_b = sorted(d["_id"] for d in c.dt_pitr_copy.b.find({}, {"_id": 1}))
        assert ids_a == list(range(len(ids_a))) and ids_b == list(range(len(ids_b)))
        assert len(ids_a) - len(ids_b) in (0, 1)
        for name in ("dt_pitr", "dt_pitr_copy"):
            c.drop_database(name)
