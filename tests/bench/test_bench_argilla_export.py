"""The Argilla export benchmark in its small form (200 records on the test server), and its
records and table on hand-made figures."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.bench


@pytest.mark.services
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


def test_the_logged_records_give_the_expected_pairs():
    from bench.argilla_export import annotated_records, expected_counts

    records = annotated_records(0, 200, ["annotator-1", "annotator-2"])
    submitted = [
        [r for r in record["responses"] if r["status"] == "submitted"] for record in records
    ]
    assert expected_counts(200) == {"pairs": 220, "draft_only": 10}
    assert sum(len(s) for s in submitted) == 220  # one pair per submitted answer
    assert sum(1 for s in submitted if not s) == 10  # 5%: a draft only
    assert records[0]["responses"][0]["status"] == "discarded"
    assert [r["user_id"] for r in records[0]["responses"]] == ["annotator-1", "annotator-2"]


def test_export_table():
    from bench.argilla_export import export_table

    def row(way: str, seconds: float) -> dict:
        return {
            "way": way,
            "seconds": seconds,
            "records_per_s": 200 / seconds,
            "rss_before_mib": 80.2,
            "peak_rss_mib": 120.7,
            "traced_peak_mib": 3.46,
            "traced_retained_mib": 1.23,
            "traced_transient_mib": 2.23,
        }

    machine = {"device_name": "CPU (2 cores, x86_64)", "date": "2026-12-07"}
    table = export_table(200, 50, [row("ours", 1.6), row("sdk", 4.0)], 42.4, machine)
    assert table.splitlines() == [
        "200 records (two annotators, 220 submitted answers), pages of 50, Argilla server 2.8.0 "
        "with SQLite on the same machine (CPU (2 cores, x86_64)), 2026-12-07",
        "",
        "| export | seconds | records/s | RSS before MiB | peak RSS MiB | traced peak MiB "
        "| retained MiB | transient MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        "| `load_argilla` (pages of JSON, pairs only) | 1.6 | 125 | 80 | 121 | 3.5 | 1.2 | 2.2 |",
        "| SDK `list(dataset.records(with_responses=True))` | 4.0 | 50 | 80 | 121 | 3.5 | 1.2 "
        "| 2.2 |",
        "",
        "Retained = what the export's result holds (the pairs; for the SDK, every record object); "
        "transient = traced peak - retained, the working set of the export itself. Logging the "
        "records took 42 s.",
    ]
    # a dataset logged by an earlier run (--dataset): no logging time
    assert export_table(200, 50, [row("ours", 1.6)], None, machine).endswith("export itself.")
