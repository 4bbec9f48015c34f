"""Argilla export: time and memory of ``prepare``'s Argilla source on a real Argilla 2.8 server.

Logs N annotated records (two annotators: submitted, discarded and draft responses) into a new
dataset, then exports it in a fresh process, as ``prepare --source argilla`` does
(:func:`tasks.sources.argilla.load_argilla`), and measures

- the wall time of the export and records per second;
- the process's RSS before the export and its peak (``ru_maxrss``) after it;
- tracemalloc's peak during a second export, what stays allocated afterwards (the pairs), and the
  difference: the transient working set, which stays at about one page of records however large
  the dataset is;
- for reference, the same for the SDK's own iteration that builds a ``Record`` per record
  (``list(dataset.records(with_responses=True))``), the way an export that keeps SDK objects would.

Usage::

    python bench/argilla_export.py [--records 10000] [--batch-size 500] [--out result.json]
                                   [--docs]                      # starts the test server
    python bench/argilla_export.py --url http://127.0.0.1:6900 --key OWNER_KEY \\
        --workspace retrieval [--annotators annotator-1,annotator-2]   # an existing server
        [--dataset bench-export-10000-xxxxxx]      # re-measure a dataset logged before

Without ``--url`` the server of the test suite is started (``tests/support/argilla_server.py``:
its own virtualenv, Redis, SQLite). Prints a table and a JSON line; ``--docs`` writes the table
into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import machine_info, update_docs

ROOT = Path(__file__).resolve().parent.parent

LOG_BATCH = 500  # records per bulk request (the server's limit)


# --- the data --------------------------------------------------------------------------------
def annotated_records(start: int, stop: int, annotators: list[str]) -> list[dict[str, Any]]:
    """Records ``start..stop-1`` as the bulk API takes them, with responses of two annotators.

    Annotator 1 discards every 20th record (i % 20 == 0), leaves a draft on the next one
    (i % 20 == 1) and submits a query for the rest; annotator 2 submits an other wording on every
    5th record. So 5% of the records have no submitted response (draft only).
    """
    first, second = annotators
    items = []
    for i in range(start, stop):
        responses = []
        if i % 20 == 0:
            # with a value: the SDK reference (argilla 2.8.0) fails on a discard without one
            values = {"query": {"value": f"discarded question {i}"}}
            responses.append({"user_id": first, "status": "discarded", "values": values})
        elif i % 20 == 1:
            values = {"query": {"value": f"draft question {i}"}}
            responses.append({"user_id": first, "status": "draft", "values": values})
        else:
            values = {"query": {"value": f"what does section {i} say about the export"}}
            responses.append({"user_id": first, "status": "submitted", "values": values})
        if i % 5 == 0:
            values = {"query": {"value": f"section {i} in other words"}}
            responses.append({"user_id": second, "status": "submitted", "values": values})
        document = (
            f"Section {i}. The annotation export reads records page by page, keeps only the "
            f"submitted answers and records the newest response time as the watermark. "
            f"Reference {i * 7 + 3}."
        )
        items.append({"fields": {"document": document}, "responses": responses})
    return items


def expected_counts(n: int) -> dict[str, int]:
    """Pairs and skipped records that :func:`annotated_records` gives for ``n`` records."""
    first = sum(1 for i in range(n) if i % 20 >= 2)
    second = sum(1 for i in range(n) if i % 5 == 0)
    draft_only = sum(1 for i in range(n) if i % 20 == 1)
    return {"pairs": first + second, "draft_only": draft_only}


def log_dataset(client: Any, workspace: str, n: int, annotators: list[str]) -> tuple[str, float]:
    """Create a dataset of ``n`` annotated records; returns (name, seconds spent logging)."""
    import argilla as rg

    name = f"bench-export-{n}-{uuid.uuid4().hex[:6]}"
    settings = rg.Settings(
        fields=[rg.TextField(name="document")],
        questions=[rg.TextQuestion(name="query")],
    )
    dataset = rg.Dataset(name=name, workspace=workspace, settings=settings, client=client)
    dataset.create()
    user_ids = [str(client.users(username).id) for username in annotators]
    started = time.perf_counter()
    for start in range(0, n, LOG_BATCH):
        items = annotated_records(start, min(n, start + LOG_BATCH), user_ids)
        reply = client.http_client.post(
            f"/api/v1/datasets/{dataset.id}/records/bulk", json={"items": items}, timeout=1800
        )
        if reply.status_code != 201:
            raise RuntimeError(f"logging records failed: HTTP {reply.status_code} {reply.text}")
        print(f"logged {min(n, start + LOG_BATCH)}/{n} records", flush=True)
    return name, time.perf_counter() - started


# --- the measurement (in a fresh process) ----------------------------------------------------
def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(dataset: str, workspace: str, batch_size: int, way: str) -> dict[str, Any]:
    """Export once for time and RSS, once under tracemalloc; ``way`` = ``ours`` or ``sdk``."""
    import gc
    import tracemalloc

    import argilla as rg

    from tasks.config import RunConfig
    from tasks.sources.argilla import load_argilla

    cfg = RunConfig(source="argilla", argilla_dataset=dataset, argilla_workspace=workspace)

    def run() -> tuple[int, int, Any]:
        """(records, pairs or responses, the result the caller keeps)."""
        if way == "ours":
            rows, info = load_argilla(cfg, batch_size=batch_size)
            return info["counts"]["records"], len(rows), rows
        client = rg.Argilla(
            api_url=os.environ["ARGILLA_API_URL"], api_key=os.environ["ARGILLA_API_KEY"]
        )
        ds = client.datasets(name=dataset, workspace=workspace)
        records = list(ds.records(with_responses=True, batch_size=batch_size))
        return len(records), sum(1 for r in records for _ in r.responses), records

    gc.collect()
    rss_before = _rss_mib()
    started = time.perf_counter()
    records, pairs, kept = run()
    seconds = time.perf_counter() - started
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del kept
    gc.collect()
    tracemalloc.start()
    kept = run()[2]
    gc.collect()  # what is still allocated now is the result (and nothing collectable)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return {
        "way": way,
        "records": records,
        "pairs": pairs,
        "seconds": seconds,
        "records_per_s": records / seconds if seconds else 0.0,
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_rss,
        "traced_peak_mib": peak / 2**20,
        "traced_retained_mib": current / 2**20,
        "traced_transient_mib": (peak - current) / 2**20,
    }


def _measure_in_child(url: str, key: str, dataset: str, workspace: str, batch: int, way: str):
    env = {**os.environ, "ARGILLA_API_URL": url, "ARGILLA_API_KEY": key, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, str(Path(__file__).resolve()), "--measure", way, "--dataset", dataset]
    argv += ["--workspace", workspace, "--batch-size", str(batch)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{way} export failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the command -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Log the records (unless ``--dataset``), export them in fresh processes our way and the
    SDK's, print the table and a JSON line, write ``--out`` and, with ``--docs``, the table into
    docs/benchmarks.md; returns the result. ``--measure`` is one such process."""
    args = _parser().parse_args(argv)
    if args.measure:  # the child process
        result = measure(args.dataset, args.workspace, args.batch_size, args.measure)
        print(json.dumps(result))
        return result
    with _argilla(args) as (url, key, workspace, annotators):
        import argilla as rg

        client = rg.Argilla(api_url=url, api_key=key, timeout=1800)
        if args.dataset:
            dataset, log_seconds = args.dataset, None
        else:
            dataset, log_seconds = log_dataset(client, workspace, args.records, annotators)
        ways = ["ours"] if args.no_sdk else ["ours", "sdk"]
        rows = [
            _measure_in_child(url, key, dataset, workspace, args.batch_size, way) for way in ways
        ]
    machine = machine_info()
    table = export_table(args.records, args.batch_size, rows, log_seconds, machine)
    print(table)
    result = {
        "records": args.records,
        "batch_size": args.batch_size,
        "expected": expected_counts(args.records),
        "log_seconds": log_seconds,
        "results": {r["way"]: r for r in rows},
        "machine": machine,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.docs:
        update_docs("argilla_export", table)
    print(json.dumps(result))
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500, help="records per export page")
    parser.add_argument("--url", help="an existing Argilla server (default: start the test one)")
    parser.add_argument("--key", help="its owner's API key")
    parser.add_argument("--workspace", default="retrieval")
    parser.add_argument("--annotators", default="annotator-1,annotator-2")
    parser.add_argument("--no-sdk", action="store_true", help="skip the SDK reference")
    parser.add_argument("--out", help="write the result JSON here")
    parser.add_argument("--docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--measure", choices=("ours", "sdk"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--dataset", help="measure this dataset (logged by an earlier run) instead of logging one"
    )
    return parser


@contextmanager
def _argilla(args: argparse.Namespace) -> Iterator[tuple[str, str, str, list[str]]]:
    """(url, owner key, workspace, annotators) of ``--url``, or of the test suite's server
    (``tests/support/argilla_server.py``), started here and stopped afterwards."""
    if args.url:
        yield args.url, args.key, args.workspace, args.annotators.split(",")
        return
    from support.argilla_server import ArgillaServer

    server = ArgillaServer(Path(tempfile.mkdtemp(prefix="bench-argilla-"))).start()
    try:
        yield server.url, server.owner_key, server.workspace, list(server.annotator_keys)
    finally:
        server.stop()


#: How the table names each way of exporting.
WAYS = {
    "ours": "`load_argilla` (pages of JSON, pairs only)",
    "sdk": "SDK `list(dataset.records(with_responses=True))`",
}


def export_table(
    records: int,
    batch_size: int,
    rows: list[dict[str, Any]],
    log_seconds: float | None,
    machine: dict[str, Any],
) -> str:
    """The markdown of the measured exports (``rows``, as :func:`measure` returns them): time,
    speed, RSS and traced memory per way, and what the columns mean."""
    lines = [
        f"{records} records (two annotators, {expected_counts(records)['pairs']} "
        f"submitted answers), pages of {batch_size}, Argilla server 2.8.0 with SQLite on "
        f"the same machine ({machine['device_name']}), {machine['date']}",
        "",
        "| export | seconds | records/s | RSS before MiB | peak RSS MiB | traced peak MiB "
        "| retained MiB | transient MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {WAYS[r['way']]} | {r['seconds']:.1f} | {r['records_per_s']:.0f} "
            f"| {r['rss_before_mib']:.0f} | {r['peak_rss_mib']:.0f} "
            f"| {r['traced_peak_mib']:.1f} | {r['traced_retained_mib']:.1f} "
            f"| {r['traced_transient_mib']:.1f} |"
        )
    lines += [
        "",
        "Retained = what the export's result holds (the pairs; for the SDK, every record object); "
        "transient = traced peak - retained, the working set of the export itself."
        + (f" Logging the records took {log_seconds:.0f} s." if log_seconds else ""),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
