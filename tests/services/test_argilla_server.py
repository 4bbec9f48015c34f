"""The Argilla 2.8 server the harness starts: SDK and REST calls the pipeline relies on.

One dataset (query, document, a label question) with ten records in two batches; two annotators
answer some of them (submitted, discarded, draft), through the REST API as the UI does and
through the owner's ``records.log``. The expected answers are computed from that plan, and the
server's answers (SDK listing, status filters, paging, REST search with filters and sort, progress
and per-user metrics) must match them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import pytest
from conftest import service_unavailable

try:
    import argilla as rg
except ImportError:  # the SDK is a pinned requirement; without it these tests cannot run
    rg = None

pytestmark = [pytest.mark.services]


@pytest.fixture(autouse=True, scope="module")
def _sdk():
    if rg is None:
        service_unavailable("Argilla SDK", "argilla is not installed (pip install argilla==2.8.0)")


# external id -> [(annotator, status, label)], sent by each annotator. A response without values
# (r3's discard) exists on the server but the SDK shows no Response object for it. It is sent with
# ``"values": {}``: with no ``values`` at all the server stores null, and the SDK 2.8.0 then fails
# to list the record with responses (AttributeError in UserResponse.from_model).
PLAN = {
    "r0": [("annotator-1", "submitted", "yes"), ("annotator-2", "submitted", "no")],
    "r1": [("annotator-1", "submitted", "yes"), ("annotator-2", "discarded", "no")],
    "r2": [("annotator-2", "draft", "no")],
    "r3": [("annotator-1", "discarded", None)],
    "r7": [("annotator-2", "submitted", "yes")],
}
LOGGED = {"r8": ("annotator-1", "submitted", "no")}  # sent with ds.records.log by the owner
FIRST_BATCH = [f"r{i}" for i in range(6)]
SECOND_BATCH = [f"r{i}" for i in range(6, 10)]


def _responses_by_record() -> dict[str, list[tuple[str, str, str | None]]]:
    answers = {key: list(value) for key, value in PLAN.items()}
    for key, response in LOGGED.items():
        answers.setdefault(key, []).append(response)
    return answers


def _with_status(status: str) -> set[str]:
    return {
        key
        for key, answers in _responses_by_record().items()
        if any(s == status for _, s, _ in answers)
    }


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _search(server, dataset_id, body: dict, key: str | None = None, me: bool = False, **params):
    prefix = "/api/v1/me" if me else "/api/v1"
    response = httpx.post(
        f"{server.url}{prefix}/datasets/{dataset_id}/records/search",
        params={"include": "responses", **params},
        headers=server.headers(key),
        json=body,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _status_filter(*statuses: str) -> dict:
    return {
        "type": "terms",
        "scope": {"entity": "response", "property": "status"},
        "values": list(statuses),
    }


@pytest.fixture(scope="module")
def annotated(argilla_server):
    """The dataset after the plan was carried out; timestamps of the steps for range filters."""
    server = argilla_server
    owner = server.client()
    settings = rg.Settings(
        fields=[rg.TextField(name="query"), rg.TextField(name="document")],
        questions=[rg.LabelQuestion(name="relevant", labels=["yes", "no"])],
    )
    name = f"smoke-{time.time_ns()}"
    dataset = rg.Dataset(name=name, workspace=server.workspace, settings=settings, client=owner)
    dataset.create()

    def rows(keys):
        return [
            {"id": k, "query": f"question {k}", "document": f"document {k} about retrieval"}
            for k in keys
        ]

    dataset.records.log(rows(FIRST_BATCH))
    between_batches = _utcnow()
    time.sleep(0.01)
    dataset.records.log(rows(SECOND_BATCH))
    server_ids = {record.id: record._server_id for record in dataset.records(with_responses=False)}

    user_ids = {name: server.client(key).me.id for name, key in server.annotator_keys.items()}
    first_half = ["r0", "r1", "r2"]
    watermark = None
    for key, answers in PLAN.items():
        if key not in first_half and watermark is None:
            time.sleep(0.01)
            watermark = _utcnow()  # responses after this are "new"
            time.sleep(0.01)
        for user, status, label in answers:
            values = {} if label is None else {"relevant": {"value": label}}
            body = {"status": status, "values": values}
            response = httpx.post(
                f"{server.url}/api/v1/records/{server_ids[key]}/responses",
                headers=server.headers(server.annotator_keys[user]),
                json=body,
                timeout=30,
            )
            assert response.status_code == 201, response.text

    to_log = []
    for record in dataset.records(with_responses=True):
        if record.id in LOGGED:
            user, status, label = LOGGED[record.id]
            record.responses.add(
                rg.Response("relevant", label, user_id=user_ids[user], status=status)
            )
            to_log.append(record)
    dataset.records.log(to_log)
    return SimpleNamespace(
        dataset=dataset,
        server_ids=server_ids,
        user_ids=user_ids,
        between_batches=between_batches,
        watermark=watermark,
    )


def test_sdk_lists_records_with_responses_across_pages(annotated):
    names = {str(user_id): name for name, user_id in annotated.user_ids.items()}
    listed = list(annotated.dataset.records(with_responses=True, batch_size=3))

    assert [record.id for record in listed] == FIRST_BATCH + SECOND_BATCH
    expected = _responses_by_record()
    for record in listed:
        got = sorted(
            (names[str(r.user_id)], getattr(r.status, "value", r.status), r.value)
            for r in record.responses
        )
        want = sorted(answer for answer in expected.get(record.id, []) if answer[2] is not None)
        assert got == want, record.id
        completed = any(status == "submitted" for _, status, _ in expected.get(record.id, []))
        assert record.status == ("completed" if completed else "pending"), record.id


@pytest.mark.parametrize("status", ["submitted", "discarded", "draft"])
def test_sdk_response_status_filter(annotated, status):
    query = rg.Query(filter=rg.Filter(("response.status", "==", status)))
    found = {record.id for record in annotated.dataset.records(query=query, batch_size=2)}
    assert found == _with_status(status)


def test_sdk_record_status_filter_and_text_query(annotated):
    completed = _with_status("submitted")
    query = rg.Query(filter=rg.Filter(("status", "==", "completed")))
    assert {r.id for r in annotated.dataset.records(query=query)} == completed
    query = rg.Query(filter=rg.Filter(("status", "==", "pending")))
    assert {r.id for r in annotated.dataset.records(query=query)} == set(
        annotated.server_ids
    ) - completed
    assert [r.id for r in annotated.dataset.records(query="document r4")] == ["r4"]


def test_progress_and_user_metrics(argilla_server, annotated):
    completed = len(_with_status("submitted"))
    progress = annotated.dataset.progress()
    assert (progress["total"], progress["completed"], progress["pending"]) == (
        10,
        completed,
        10 - completed,
    )

    for user, key in argilla_server.annotator_keys.items():
        response = httpx.get(
            f"{argilla_server.url}/api/v1/me/datasets/{annotated.dataset.id}/metrics",
            headers=argilla_server.headers(key),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        mine = [
            s for answers in _responses_by_record().values() for u, s, _ in answers if u == user
        ]
        metrics = response.json()["responses"]
        for status in ("submitted", "discarded", "draft"):
            assert metrics[status] == mine.count(status), (user, status)
        assert metrics["pending"] == 10 - len(mine)


def test_rest_search_submitted_sorted_by_updated_at_pages(argilla_server, annotated):
    body = {
        "filters": {"and": [_status_filter("submitted")]},
        "sort": [{"scope": {"entity": "record", "property": "updated_at"}, "order": "desc"}],
    }
    items, offset, total = [], 0, None
    while True:
        page = _search(argilla_server, annotated.dataset.id, body, offset=offset, limit=2)
        total = page["total"]
        if not page["items"]:
            break
        items += [item["record"] for item in page["items"]]
        offset += 2
    assert total == len(_with_status("submitted"))
    assert {item["external_id"] for item in items} == _with_status("submitted")
    stamps = [datetime.fromisoformat(item["updated_at"]) for item in items]
    assert stamps == sorted(stamps, reverse=True)

    # What the annotation trigger counts: submitted responses newer than a watermark (UTC).
    new = [
        r
        for item in items
        for r in item["responses"]
        if r["status"] == "submitted"
        and datetime.fromisoformat(r["updated_at"]) > annotated.watermark
    ]
    expected = [
        s
        for key, answers in _responses_by_record().items()
        if key not in ("r0", "r1", "r2")
        for _, s, _ in answers
    ]
    assert len(new) == expected.count("submitted")


def test_rest_search_range_on_inserted_at_and_sort_asc(argilla_server, annotated):
    body = {
        "filters": {
            "and": [
                {
                    "type": "range",
                    "scope": {"entity": "record", "property": "inserted_at"},
                    "ge": annotated.between_batches.isoformat() + "Z",
                }
            ]
        },
        "sort": [{"scope": {"entity": "record", "property": "external_id"}, "order": "desc"}],
    }
    page = _search(argilla_server, annotated.dataset.id, body, limit=50)
    assert [item["record"]["external_id"] for item in page["items"]] == sorted(
        SECOND_BATCH, reverse=True
    )
    assert page["total"] == len(SECOND_BATCH)


def test_rest_search_pending_and_per_user_scope(argilla_server, annotated):
    answered = set(_responses_by_record())
    page = _search(
        argilla_server, annotated.dataset.id, {"filters": {"and": [_status_filter("pending")]}}
    )
    assert {item["record"]["external_id"] for item in page["items"]} == set(
        annotated.server_ids
    ) - answered

    # On /me, statuses are the caller's own: annotator-2 submitted r0 and r7.
    key = argilla_server.annotator_keys["annotator-2"]
    body = {"filters": {"and": [_status_filter("submitted")]}}
    page = _search(argilla_server, annotated.dataset.id, body, key=key, me=True)
    mine = {
        k
        for k, answers in _responses_by_record().items()
        if ("annotator-2", "submitted") in [(u, s) for u, s, _ in answers]
    }
    assert {item["record"]["external_id"] for item in page["items"]} == mine


def test_worker_recomputes_record_status_after_distribution_change(argilla_server):
    owner = argilla_server.client()
    settings = rg.Settings(
        fields=[rg.TextField(name="text")],
        questions=[rg.RatingQuestion(name="quality", values=[1, 2, 3])],
    )
    dataset = rg.Dataset(
        name=f"worker-{time.time_ns()}",
        workspace=argilla_server.workspace,
        settings=settings,
        client=owner,
    )
    dataset.create()
    dataset.records.log([{"id": f"w{i}", "text": f"text {i}"} for i in range(3)])
    ids = {r.id: r._server_id for r in dataset.records()}
    for user, key in argilla_server.annotator_keys.items():
        for record in ("w0", "w1") if user == "annotator-1" else ("w0",):
            response = httpx.post(
                f"{argilla_server.url}/api/v1/records/{ids[record]}/responses",
                headers=argilla_server.headers(key),
                json={"status": "submitted", "values": {"quality": {"value": 2}}},
                timeout=30,
            )
            assert response.status_code == 201, response.text
    assert dataset.progress()["completed"] == 2

    response = httpx.patch(
        f"{argilla_server.url}/api/v1/datasets/{dataset.id}",
        headers=argilla_server.headers(),
        json={"distribution": {"strategy": "overlap", "min_submitted": 2}},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 60
    while dataset.progress()["completed"] != 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert dataset.progress()["completed"] == 1  # only w0 has two submitted responses
    query = rg.Query(filter=rg.Filter(("status", "==", "completed")))
    assert [r.id for r in dataset.records(query=query)] == ["w0"]
