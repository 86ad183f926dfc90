"""The YAML of rendered Kubernetes manifests reads back as exactly the documents given,
whatever their keys and strings hold."""

from __future__ import annotations

from typing import Any

import yaml

from datatier.provision.artifacts.yamltext import dump_all


def test_awkward_keys_and_strings_read_back_exactly() -> None:
    labels = {"app.kubernetes.io/name": "datatier", "on": "yes", "a: b": "#not a comment"}
    doc: dict[str, Any] = {
        "metadata": {"labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},  # the same dict twice: no anchor/alias
            "values": ["3306", "null", "", "-c", "@weekly", "30 1 * * MON-FRI", "étagère"],
            "script": "set -e\nline two: with colon\n",
            "numbers": [1, 2.5, True, None],
            "empty": {},
            "nothing": [],
        },
    }
    text = dump_all([doc, {"kind": "Second"}])
    assert list(yaml.safe_load_all(text)) == [doc, {"kind": "Second"}]
    assert text.startswith("---\n") and text.count("\n---\n") == 1
    assert "&" not in text and "*id" not in text
    assert "étagère" in text, "non-ASCII is written as is"
    long = "x " * 200
    assert len(dump_all([{"args": [long]}]).splitlines()) == 3, "long strings are not folded"
