"""The fault proxy really misbehaves: each fault is seen by a real client call.

Each test scripts :class:`~bqrepo.testing.faults.FaultProxy` in front of the
stand-in and checks what google-cloud-bigquery sees, and what the stand-in
stored, so a proxy that silently forwarded everything would fail here.
"""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

import pytest
import requests
from google.api_core import exceptions as google_errors
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from bqrepo.testing.faults import (
    DATASET_GET,
    DATASETS_INSERT,
    GET,
    INSERT_ALL,
    JOBS_INSERT,
    POST,
    FaultProxy,
    is_load_job,
    is_query_job,
)
from bqrepo.testing.standin import LocalBigQuery

NDJSON = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON)


def client_for(proxy: FaultProxy, project: str, location: str = "US") -> Any:
    return bigquery.Client(
        project=project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=proxy.endpoint),
        location=location,
    )


@pytest.fixture
def table(faulty_bigquery: FaultProxy, standin: LocalBigQuery) -> tuple[Any, str]:
    """A client through the proxy and a fresh ``dataset.t (x INT64)``."""
    client = client_for(faulty_bigquery, standin.project)
    dataset = f"f_{uuid.uuid4().hex[:10]}"
    client.create_dataset(dataset)
    client.query(f"CREATE TABLE {dataset}.t (x INT64)").result()
    return client, f"{standin.project}.{dataset}.t"


def values(client: Any, table_id: str) -> list[int]:
    return sorted(row.x for row in client.query(f"SELECT x FROM `{table_id}`").result())


def load(client: Any, table_id: str, x: int) -> Any:
    data = f'{{"x": {x}}}\n'.encode()
    return client.load_table_from_file(io.BytesIO(data), table_id, size=len(data), job_config=NDJSON)


def test_503_reaches_a_client_without_retry_and_is_retried_by_default(
    faulty_bigquery: FaultProxy, table: tuple[Any, str]
) -> None:
    client, table_id = table
    faulty_bigquery.fail(POST, INSERT_ALL, status=503, times=1)
    with pytest.raises(google_errors.ServiceUnavailable) as caught:
        client.insert_rows_json(table_id, [{"x": 1}], retry=None)
    assert caught.value.errors[0]["reason"] == "backendError"
    faulty_bigquery.fail(POST, INSERT_ALL, status=500, times=1)
    assert client.insert_rows_json(table_id, [{"x": 2}], row_ids=["b"]) == []
    assert values(client, table_id) == [2]
    assert faulty_bigquery.faults() == ["fail", "fail"]


def test_reset_connection_processes_nothing(
    faulty_bigquery: FaultProxy, table: tuple[Any, str]
) -> None:
    client, table_id = table
    faulty_bigquery.reset(POST, INSERT_ALL, times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.insert_rows_json(table_id, [{"x": 1}], retry=None)
    assert values(client, table_id) == []


def test_slow_answer_takes_the_delay(faulty_bigquery: FaultProxy, table: tuple[Any, str]) -> None:
    client, table_id = table
    faulty_bigquery.slow(POST, INSERT_ALL, delay=1.5)
    started = time.monotonic()
    assert client.insert_rows_json(table_id, [{"x": 1}]) == []
    assert time.monotonic() - started >= 1.5
    with pytest.raises(requests.exceptions.Timeout):
        faulty_bigquery.slow(POST, INSERT_ALL, delay=2.0)
        client.insert_rows_json(table_id, [{"x": 2}], retry=None, timeout=0.5)


def test_dropped_insert_all_answer_was_processed(
    faulty_bigquery: FaultProxy, table: tuple[Any, str]
) -> None:
    client, table_id = table
    faulty_bigquery.drop_response(POST, INSERT_ALL, times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.insert_rows_json(table_id, [{"x": 1}], row_ids=["a"], retry=None)
    assert values(client, table_id) == [1]
    # The client's own retry re-sends; the insertId makes the re-send a no-op.
    faulty_bigquery.drop_response(POST, INSERT_ALL, times=1)
    assert client.insert_rows_json(table_id, [{"x": 2}], row_ids=["b"]) == []
    assert values(client, table_id) == [1, 2]


def test_dropped_load_job_answer_gives_409_on_the_clients_retry(
    faulty_bigquery: FaultProxy, table: tuple[Any, str]
) -> None:
    """google-resumable-media re-sends the upload with the same job id: 409, rows stored once."""
    client, table_id = table
    faulty_bigquery.drop_response(POST, JOBS_INSERT, when=is_load_job)
    with pytest.raises(google_errors.Conflict, match="Already Exists"):
        load(client, table_id, 7)
    uploads = faulty_bigquery.recorded(POST, "^/upload/")
    assert [u.query["uploadType"] for u in uploads] == [["multipart"], ["multipart"]]
    assert uploads[0].body["jobReference"]["jobId"] == uploads[1].body["jobReference"]["jobId"]
    assert [u.status for u in uploads] == [200, 409]
    assert values(client, table_id) == [7]


def test_dropped_query_answer_is_recovered_by_the_client(
    faulty_bigquery: FaultProxy, table: tuple[Any, str]
) -> None:
    client, table_id = table
    faulty_bigquery.drop_response(POST, JOBS_INSERT, when=is_query_job)
    rows = client.query(f"SELECT 41 + 1 AS answer FROM `{table_id}` RIGHT JOIN UNNEST([1]) ON TRUE")
    assert [row.answer for row in rows.result()] == [42]
    assert faulty_bigquery.faults() == ["drop"]
    assert len(faulty_bigquery.recorded(POST, JOBS_INSERT)) >= 2


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("backendError", google_errors.InternalServerError),
        ("rateLimitExceeded", google_errors.TooManyRequests),
        ("quotaExceeded", google_errors.Forbidden),
    ],
)
def test_failed_load_job_stores_nothing(
    faulty_bigquery: FaultProxy, table: tuple[Any, str], reason: str, error: type[Exception]
) -> None:
    client, table_id = table
    faulty_bigquery.fail_job(reason=reason)
    job = load(client, table_id, 3)
    with pytest.raises(error):
        job.result(timeout=30)
    assert job.error_result["reason"] == reason
    assert job.errors == [job.error_result]
    assert values(client, table_id) == []
    load(client, table_id, 4).result(timeout=30)  # the rule fired once
    assert values(client, table_id) == [4]


def test_datasets_insert_denied_while_get_works(
    faulty_bigquery: FaultProxy, table: tuple[Any, str]
) -> None:
    client, table_id = table
    dataset_id = table_id.rsplit(".", 1)[0]
    faulty_bigquery.fail(POST, DATASETS_INSERT, status=403, reason="accessDenied", times=None)
    with pytest.raises(google_errors.Forbidden, match="Access Denied"):
        client.create_dataset(dataset_id, exists_ok=True)
    assert client.get_dataset(dataset_id).dataset_id == dataset_id.split(".")[1]
    assert [r.fault for r in faulty_bigquery.recorded(GET, DATASET_GET)] == [None]


def test_job_in_another_location_than_its_dataset_is_not_found(
    faulty_bigquery: FaultProxy, standin: LocalBigQuery
) -> None:
    client = client_for(faulty_bigquery, standin.project)
    dataset = bigquery.Dataset(f"{standin.project}.f_{uuid.uuid4().hex[:10]}")
    dataset.location = "EU"
    client.create_dataset(dataset)
    assert client.get_dataset(dataset.reference).location == "EU"
    config = bigquery.QueryJobConfig(default_dataset=dataset.reference)
    with pytest.raises(google_errors.NotFound, match="was not found in location US"):
        client.query("SELECT 1", job_config=config).result()
    in_eu = client_for(faulty_bigquery, standin.project, location="EU")
    assert [tuple(r) for r in in_eu.query("SELECT 1", job_config=config).result()] == [(1,)]


def test_requests_are_recorded_with_their_bodies(
    faulty_bigquery: FaultProxy, table: tuple[Any, str]
) -> None:
    client, _ = table
    config = bigquery.QueryJobConfig(labels={"team": "x"}, maximum_bytes_billed=10**9)
    client.query("SELECT 1", job_config=config).result()
    (sent,) = [r for r in faulty_bigquery.recorded(POST, JOBS_INSERT) if is_query_job(r)][-1:]
    assert sent.body["configuration"]["labels"] == {"team": "x"}
    assert sent.body["configuration"]["query"]["maximumBytesBilled"] == str(10**9)


def test_probability_is_seeded(standin: LocalBigQuery) -> None:
    def fired() -> list[int]:
        with FaultProxy(standin.endpoint, seed=3) as proxy:
            proxy.fail(GET, "datasets$", status=503, times=None, probability=0.5)
            session = requests.Session()
            url = f"{proxy.endpoint}/bigquery/v2/projects/{standin.project}/datasets"
            return [session.get(url).status_code for _ in range(20)]

    first = fired()
    assert first == fired()
    assert 3 < first.count(503) < 17


def test_dedup_miss_stores_a_request_twice(faulty_bigquery: FaultProxy, table: tuple[Any, str]) -> None:
    client, table_id = table
    faulty_bigquery.dedup_miss(times=1)
    assert client.insert_rows_json(table_id, [{"x": 1}, {"x": 2}], row_ids=["a", "b"]) == []
    assert values(client, table_id) == [1, 1, 2, 2]
    assert client.insert_rows_json(table_id, [{"x": 1}], row_ids=["a"]) == []  # ids still de-duplicate
    assert values(client, table_id) == [1, 1, 2, 2]
