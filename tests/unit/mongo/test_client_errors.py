"""The one-line MongoDB connection error (datatier/mongo/client.py): no password, no
topology description. The texts are pymongo 4's, as seen against closed and silent ports
(tests/integration/mongo/test_mongo_unreachable.py checks them end to end)."""

from __future__ import annotations

import pymongo.errors

from datatier.mongo.client import describe_failure, safe_uri, unreachable

REFUSED = (
    "127.0.0.1:27990: [Errno 111] Connection refused (configured timeouts: socketTimeoutMS: "
    "20000.0ms, connectTimeoutMS: 20000.0ms), Timeout: 0.7s, Topology Description: "
    "<TopologyDescription id: 1, topology_type: Unknown, servers: [<ServerDescription "
    "('127.0.0.1', 27990) server_type: Unknown, rtt: None, error=AutoReconnect('...')>]>"
)
TWO = (
    "h1:1: [Errno 111] Connection refused (configured timeouts: socketTimeoutMS: 1ms, "
    "connectTimeoutMS: 1ms),h2:2: [Errno -2] Name or service not known (configured timeouts: "
    "socketTimeoutMS: 1ms, connectTimeoutMS: 1ms), Timeout: 5.0s, Topology Description: <...>"
)


def test_the_password_never_shows() -> None:
    assert safe_uri("mongodb://u:s3cret@h1:1,h2:2/db?x=1") == "mongodb://u@h1:1,h2:2/db?x=1"
    assert safe_uri("mongodb://h:1/") == "mongodb://h:1/"
    error = unreachable(
        "mongodb://u:s3cret@h:1/", pymongo.errors.ServerSelectionTimeoutError(REFUSED)
    )
    assert str(error) == "cannot reach MongoDB at mongodb://u@h:1/: connection refused"


def test_reasons_are_short_and_name_each_node_of_a_seed_list() -> None:
    assert describe_failure(pymongo.errors.ServerSelectionTimeoutError(REFUSED)) == (
        "connection refused"
    )
    assert describe_failure(pymongo.errors.ServerSelectionTimeoutError(TWO), True) == (
        "h1:1 connection refused; h2:2 unknown host"
    )
    gone = pymongo.errors.AutoReconnect("h:1: connection closed")
    assert str(unreachable("mongodb://h:1/", gone)) == (
        "MongoDB at mongodb://h:1/ went away: connection closed"
    )
    odd = pymongo.errors.ServerSelectionTimeoutError(
        "No primary available for writes, Timeout: 5.0s, Topology Description: <...>"
    )
    assert describe_failure(odd) == "No primary available for writes"
