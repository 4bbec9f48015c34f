"""The Argilla export benchmark in its small form (200 records on the test server)."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.bench, pytest.mark.services]


def test_argilla_export_small(argilla_server, tmp_path):
    from bench.argilla_export import expected_counts, main

    out = tmp_path / "export.json"
    result = main(
        [
            "--records",
            "200",
            "--batch-size",
            "50",
            "--url",
            argilla_server.url,
            "--key",
            argilla_server.owner_key,
            "--workspace",
            argilla_server.workspace,
            "--annotators",
            ",".join(argilla_server.annotator_keys),
            "--out",
            str(out),
        ]
    )
    ours, sdk = result["results"]["ours"], result["results"]["sdk"]
    assert ours["records"] == sdk["records"] == 200
    assert ours["pairs"] == expected_counts(200)["pairs"] == 220
    assert ours["seconds"] > 0 and ours["peak_rss_mib"] >= ours["rss_before_mib"] > 0
    # The export keeps pairs, not record objects: less retained than the SDK's records.
    assert 0 < ours["traced_retained_mib"] < sdk["traced_retained_mib"]
    assert json.loads(out.read_text())["records"] == 200
