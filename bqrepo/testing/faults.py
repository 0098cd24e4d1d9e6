"""A BigQuery that misbehaves: a scriptable HTTP proxy in front of the stand-in.

Why: the local stand-in never fails a request, has no permissions and
ignores locations, so code proven only against it has never met a 503, a
lost response, a failed load job, a least-privilege service account or a
dataset in another region. Real BigQuery does all of that. This proxy sits
on ``127.0.0.1`` between the client and the stand-in and makes those
failures happen on demand, per test, reproducibly (a seeded RNG)::

    proxy = FaultProxy(standin.endpoint).start()
    proxy.fail(POST, INSERT_ALL, status=503, times=1)       # one 503
    proxy.drop_response(POST, JOBS_INSERT, times=1)          # processed, answer lost
    proxy.fail_job(JOBS_INSERT, reason="backendError", when=is_load_job)
    proxy.fail(POST, DATASETS_INSERT, status=403, reason="accessDenied")
    proxy.dataset_locations["test-project.d"] = "EU"          # jobs elsewhere get 404
    proxy.bill_queries(50 * 2**30)   # dry runs say 50 GiB; jobs under that limit are refused

Point a client at :attr:`FaultProxy.host` (``BIGQUERY_EMULATOR_HOST``).
Every request is recorded in :attr:`FaultProxy.requests` (method, path,
query, JSON body, and which fault, if any, it met), so a test can assert
what was sent.

A rule matches on the HTTP method, a regular expression searched in the
path, and optionally a predicate on the recorded request; it fires at most
``times`` times, each time with ``probability`` (default: always). The
first rule that fires decides what happens to the request.
"""

from __future__ import annotations

import copy
import http.client
import json
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "DATASETS_INSERT",
    "DATASET_GET",
    "GET",
    "INSERT_ALL",
    "JOBS_GET",
    "JOBS_INSERT",
    "MIN_BYTES_BILLED",
    "POST",
    "PUT",
    "QUERIES",
    "FaultProxy",
    "RecordedRequest",
    "Rule",
    "billed_bytes",
    "is_load_job",
    "is_query_job",
]

GET, POST, PUT = "GET", "POST", "PUT"

#: ``tabledata.insertAll`` (streaming).
INSERT_ALL = r"/tables/[^/]+/insertAll$"
#: ``jobs.insert``, including the media upload endpoint load jobs from files use.
JOBS_INSERT = r"^(/upload)?/bigquery/v2/projects/[^/]+/jobs$"
#: ``jobs.get`` (the client polls it while waiting for a job).
JOBS_GET = r"^/bigquery/v2/projects/[^/]+/jobs/[^/]+$"
#: ``jobs.query`` and ``jobs.getQueryResults``.
QUERIES = r"^/bigquery/v2/projects/[^/]+/queries(/[^/]+)?$"
#: ``datasets.insert``.
DATASETS_INSERT = r"^/bigquery/v2/projects/[^/]+/datasets$"
#: ``datasets.get``.
DATASET_GET = r"^/bigquery/v2/projects/[^/]+/datasets/[^/]+$"

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


@dataclass
class RecordedRequest:
    """One request as the client sent it, and the fault it met (``None``: forwarded)."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    raw: bytes
    fault: str | None = None
    status: int | None = None


@dataclass
class Rule:
    """When to misbehave (method, path regex, predicate, count, probability) and how."""

    method: str | None
    path: str
    action: str
    times: int | None = 1
    probability: float | None = None
    when: Callable[[RecordedRequest], bool] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    fired: int = 0

    def matches(self, request: RecordedRequest) -> bool:
        if self.method is not None and request.method != self.method:
            return False
        if not re.search(self.path, request.path):
            return False
        return self.when is None or bool(self.when(request))


def is_load_job(request: RecordedRequest) -> bool:
    """A ``jobs.insert`` (or its upload) whose job is a load job."""
    return isinstance(request.body, dict) and "load" in request.body.get("configuration", {})


def is_query_job(request: RecordedRequest) -> bool:
    """A ``jobs.insert`` whose job is a query, or a ``jobs.query`` call."""
    if not isinstance(request.body, dict):
        return False
    return "query" in request.body.get("configuration", {}) or (
        request.path.endswith("/queries") and "query" in request.body
    )


#: BigQuery bills at least 10 MiB per query (on-demand pricing), rounding up to whole MiB.
MIN_BYTES_BILLED = 10 * 2**20


def billed_bytes(processed: int) -> int:
    """What BigQuery would bill for ``processed`` bytes: rounded up to a MiB, at least 10 MiB.

    (BigQuery rounds per table referenced; one table's worth is modelled.)
    """
    return max(MIN_BYTES_BILLED, -(-processed // 2**20) * 2**20)


def error_body(status: int, reason: str, message: str) -> dict[str, Any]:
    """An error response body in BigQuery's shape (what the client parses ``errors`` from)."""
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }


_DEFAULT_MESSAGES = {
    "backendError": "Error encountered during execution. Retrying may solve the problem.",
    "internalError": "An internal error occurred and the request could not be completed.",
    "rateLimitExceeded": "Exceeded rate limits: too many table update operations for this table.",
    "quotaExceeded": "Quota exceeded: Your table exceeded quota for imports or query appends per table.",
    "accessDenied": "Access Denied: User does not have the permission to do this.",
}


def _multipart_metadata(content_type: str, raw: bytes) -> Any:
    """The JSON metadata part of a ``multipart/related`` upload, or ``None``."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    for part in message.iter_parts():
        if part.get_content_type() == "application/json":
            payload = part.get_payload(decode=True)
            return json.loads(payload) if isinstance(payload, bytes) else None
    return None


class FaultProxy:
    """The proxy; see the module docstring. Thread-safe; start it, script it, stop it."""

    def __init__(self, upstream: str, *, seed: int = 0) -> None:
        parts = urlsplit(upstream if "://" in upstream else f"http://{upstream}")
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.rules: list[Rule] = []
        self.requests: list[RecordedRequest] = []
        #: ``project.dataset`` -> location. Learnt from successful ``datasets.insert``
        #: bodies; set an entry to put a dataset in another location. Jobs pinned to
        #: a different location are refused with BigQuery's 404, and ``datasets.get``
        #: answers with this location (the stand-in ignores locations).
        self.dataset_locations: dict[str, str] = {}
        self._failed_jobs: dict[str, dict[str, Any]] = {}
        self._uploads: dict[str, dict[str, Any]] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "the proxy is not started"
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the value for ``BIGQUERY_EMULATOR_HOST``."""
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- scripting -----------------------------------------------------------------

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule (recorded requests and known locations stay)."""
        with self._lock:
            self.rules.clear()

    def fail(
        self,
        method: str | None,
        path: str,
        *,
        status: int = 503,
        reason: str = "backendError",
        message: str | None = None,
        times: int | None = 1,
        probability: float | None = None,
        when: Callable[[RecordedRequest], bool] | None = None,
    ) -> Rule:
        """Answer with an HTTP error in BigQuery's shape; the request is not forwarded."""
        text = message or _DEFAULT_MESSAGES.get(reason, f"injected {status} {reason}")
        return self.add(
            Rule(method, path, "fail", times, probability, when,
                 {"status": status, "reason": reason, "message": text})
        )

    def reset(self, method: str | None, path: str, *, times: int | None = 1,
              probability: float | None = None,
              when: Callable[[RecordedRequest], bool] | None = None) -> Rule:
        """Reset the connection (TCP RST) before forwarding: nothing was processed."""
        return self.add(Rule(method, path, "reset", times, probability, when))

    def slow(self, method: str | None, path: str, *, delay: float, times: int | None = 1,
             probability: float | None = None,
             when: Callable[[RecordedRequest], bool] | None = None) -> Rule:
        """Wait ``delay`` seconds, then forward and answer normally."""
        return self.add(Rule(method, path, "slow", times, probability, when, {"delay": delay}))

    def drop_response(self, method: str | None, path: str, *, times: int | None = 1,
                      probability: float | None = None,
                      when: Callable[[RecordedRequest], bool] | None = None) -> Rule:
        """Forward, let the stand-in process it, then close the socket unanswered."""
        return self.add(Rule(method, path, "drop", times, probability, when))

    def dedup_miss(self, path: str = INSERT_ALL, *, times: int | None = 1,
                   probability: float | None = None,
                   when: Callable[[RecordedRequest], bool] | None = None) -> Rule:
        """Store an ``insertAll`` request's rows twice, as BigQuery's best-effort
        de-duplication sometimes does with a retried request (the second copy is
        forwarded without its insertIds, so the stand-in cannot drop it)."""
        return self.add(Rule(POST, path, "dedup_miss", times, probability, when))

    def misbehave(self, rate: float = 0.1) -> None:
        """Make about ``rate`` of the requests of a write-and-read workload fail.

        Lost answers, resets and failed load jobs on ``jobs.insert``; lost
        answers, resets, 503s and de-duplication misses on ``insertAll``;
        503s on ``jobs.get`` and ``jobs.getQueryResults``. Every fault is one
        the client or bqrepo is expected to survive without losing or
        double-counting a row.
        """
        share = rate / 3
        self.drop_response(POST, JOBS_INSERT, times=None, probability=share)
        self.reset(POST, JOBS_INSERT, times=None, probability=share)
        self.fail_job(JOBS_INSERT, reason="backendError", times=None, probability=share)
        quarter = rate / 4
        self.drop_response(POST, INSERT_ALL, times=None, probability=quarter)
        self.reset(POST, INSERT_ALL, times=None, probability=quarter)
        self.fail(POST, INSERT_ALL, status=503, times=None, probability=quarter)
        self.dedup_miss(INSERT_ALL, times=None, probability=quarter)
        self.fail(GET, JOBS_GET, status=503, times=None, probability=rate)
        self.fail(GET, QUERIES, status=503, times=None, probability=rate)

    def fail_job(self, path: str = JOBS_INSERT, *, reason: str = "backendError",
                 message: str | None = None, times: int | None = 1,
                 probability: float | None = None,
                 when: Callable[[RecordedRequest], bool] | None = is_load_job) -> Rule:
        """Make the job a request creates fail with ``reason``, storing nothing.

        The job is not forwarded (so, as on BigQuery, a failed load stored no
        rows); ``jobs.insert`` answers with the job PENDING and ``jobs.get``
        then reports it DONE with ``status.errorResult`` and ``status.errors``.
        """
        text = message or _DEFAULT_MESSAGES.get(reason, f"injected job failure {reason}")
        return self.add(
            Rule(POST, path, "fail_job", times, probability, when, {"reason": reason, "message": text})
        )

    def bill_queries(self, bytes_processed: int, *, times: int | None = None,
                     when: Callable[[RecordedRequest], bool] | None = is_query_job) -> Rule:
        """Make query jobs cost ``bytes_processed``, as BigQuery prices them (the stand-in says 0, and
        ignores ``maximumBytesBilled``).

        A dry run is forwarded and its answer reports ``bytes_processed`` as
        ``totalBytesProcessed``. A job whose ``maximumBytesBilled`` is below what
        BigQuery would bill (:func:`billed_bytes`) is not forwarded: it fails at
        once with reason ``bytesBilledLimitExceeded`` and BigQuery's message,
        "Query exceeded limit for bytes billed: LIMIT. REQUIRED or higher
        required." Other jobs run as usual.
        """
        return self.add(Rule(POST, JOBS_INSERT, "bill", times, None, when, {"bytes": bytes_processed}))

    # --- inspection ----------------------------------------------------------------

    def recorded(self, method: str | None = None, path: str = "", *,
                 fault: str | None | bool = False) -> list[RecordedRequest]:
        """Recorded requests matching method and path regex (and ``fault`` unless False)."""
        with self._lock:
            found = list(self.requests)
        return [
            r for r in found
            if (method is None or r.method == method)
            and re.search(path, r.path)
            and (fault is False or r.fault == fault)
        ]

    def faults(self) -> list[str]:
        """The faults that fired, in order."""
        with self._lock:
            return [r.fault for r in self.requests if r.fault]

    # --- internals -----------------------------------------------------------------

    def _choose(self, request: RecordedRequest) -> Rule | None:
        with self._lock:
            self.requests.append(request)
            for rule in self.rules:
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if not rule.matches(request):
                    continue
                if rule.probability is not None and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                request.fault = rule.action
                return rule
        return None

    def _location_error(self, request: RecordedRequest) -> dict[str, Any] | None:
        """BigQuery's 404 for a job pinned to another location than its dataset's."""
        body = request.body
        if request.method != POST or not isinstance(body, dict):
            return None
        if re.search(JOBS_INSERT, request.path):
            location = body.get("jobReference", {}).get("location")
            config = body.get("configuration", {})
            inner = config.get("load") or config.get("query") or {}
            refs = [inner.get("destinationTable"), inner.get("defaultDataset")]
        elif request.path.endswith("/queries"):
            location = body.get("location")
            refs = [body.get("defaultDataset")]
        else:
            return None
        if not location:
            return None
        for ref in refs:
            if not ref:
                continue
            key = f"{ref.get('projectId')}.{ref.get('datasetId')}"
            with self._lock:
                known = self.dataset_locations.get(key)
            if known is not None and known.lower() != str(location).lower():
                message = (
                    f"Not found: Dataset {ref.get('projectId')}:{ref.get('datasetId')} "
                    f"was not found in location {location}"
                )
                return error_body(404, "notFound", message)
        return None

    def _failed_job(self, request: RecordedRequest, rule: Rule) -> dict[str, Any]:
        """A job resource for a job BigQuery accepted and will fail; remembered for jobs.get."""
        resource = copy.deepcopy(request.body) if isinstance(request.body, dict) else {}
        reference = resource.setdefault("jobReference", {})
        reference.setdefault("projectId", request.path.split("/projects/")[1].split("/")[0])
        reference.setdefault("jobId", f"job_{uuid.uuid4().hex}")
        reference.setdefault("location", "US")
        resource["id"] = f"{reference['projectId']}:{reference['location']}.{reference['jobId']}"
        now = str(int(time.time() * 1000))
        done = copy.deepcopy(resource)
        error = {"reason": rule.options["reason"], "message": rule.options["message"]}
        done["status"] = {"state": "DONE", "errorResult": error, "errors": [error]}
        done["statistics"] = {"creationTime": now, "startTime": now, "endTime": now}
        with self._lock:
            self._failed_jobs[reference["jobId"]] = done
        resource["status"] = {"state": "PENDING"}
        resource["statistics"] = {"creationTime": now}
        return resource


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the per-request log on stderr; requests are recorded instead."""

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _record(self, raw: bytes) -> RecordedRequest:
        parts = urlsplit(self.path)
        content_type = self.headers.get("Content-Type", "")
        body: Any = None
        try:
            if content_type.startswith("multipart/"):
                body = _multipart_metadata(content_type, raw)
            elif raw and "json" in content_type:
                body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            body = None
        return RecordedRequest(self.command, parts.path, parse_qs(parts.query), body, raw)

    def _send(self, status: int, body: Any, headers: list[tuple[str, str]] | None = None) -> None:
        payload = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        for name, value in headers or [("Content-Type", "application/json; charset=UTF-8")]:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _abort(self) -> None:
        """Close the socket with an RST, so the client sees a reset connection."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _handle(self) -> None:
        owner = self.owner
        raw = self._read_body()
        request = self._record(raw)
        if request.path.startswith("/__faults/upload/"):
            self._failed_upload(request)
            return
        rule = owner._choose(request)
        action = rule.action if rule else None
        if rule is not None and action == "fail":
            request.status = rule.options["status"]
            self._send(request.status, error_body(request.status, rule.options["reason"],
                                                  rule.options["message"]))
            return
        if action == "reset":
            self._abort()
            return
        if rule is not None and action == "slow":
            time.sleep(rule.options["delay"])
        location_error = owner._location_error(request)
        if location_error is not None:
            request.fault = request.fault or "location"
            request.status = 404
            self._send(404, location_error)
            return
        if rule is not None and action == "fail_job":
            self._fail_job(request, rule)
            return
        if rule is not None and action == "bill" and self._bill(request, rule, raw):
            return
        if request.method == GET and re.search(JOBS_GET, request.path):
            job_id = request.path.rsplit("/", 1)[1]
            with owner._lock:
                failed = owner._failed_jobs.get(job_id)
            if failed is not None:
                request.status = 200
                self._send(200, failed)
                return
        if request.method == GET and re.search(QUERIES, request.path) and request.path.count("/queries/"):
            job_id = request.path.rsplit("/", 1)[1]
            with owner._lock:
                failed = owner._failed_jobs.get(job_id)
            if failed is not None:
                # jobs.getQueryResults of a failed job answers with the job's error.
                error = failed["status"]["errorResult"]
                request.status = 400
                self._send(400, error_body(400, error["reason"], error["message"]))
                return
        if action == "dedup_miss" and isinstance(request.body, dict):
            copy_body = {**request.body, "rows": [
                {k: v for k, v in row.items() if k != "insertId"} for row in request.body.get("rows", [])
            ]}
            self._forward(json.dumps(copy_body).encode())
        status, headers, body = self._forward(raw)
        request.status = status
        if action == "drop":
            self._abort()
            return
        body = self._rewrite(request, status, body)
        self._send(status, body, headers)

    def _bill(self, request: RecordedRequest, rule: Rule, raw: bytes) -> bool:
        """Answer a query job as :meth:`FaultProxy.bill_queries` says; False: forward it as usual."""
        body = request.body if isinstance(request.body, dict) else {}
        configuration = body.get("configuration", {})
        processed = int(rule.options["bytes"])
        if configuration.get("dryRun"):
            status, headers, answer = self._forward(raw)
            request.status = status
            if status == 200:
                resource = json.loads(answer)
                statistics = resource.setdefault("statistics", {})
                statistics["totalBytesProcessed"] = str(processed)
                statistics.setdefault("query", {})["totalBytesProcessed"] = str(processed)
                answer = json.dumps(resource).encode()
            self._send(status, answer, headers)
            return True
        limit = configuration.get("query", {}).get("maximumBytesBilled")
        required = billed_bytes(processed)
        if limit is None or int(limit) >= required:
            request.fault = None  # priced, and within its limit: runs as usual
            return False
        message = f"Query exceeded limit for bytes billed: {int(limit)}. {required} or higher required."
        resource = self.owner._failed_job(request, Rule(POST, JOBS_INSERT, "bill", options={
            "reason": "bytesBilledLimitExceeded", "message": message}))
        with self.owner._lock:
            resource = copy.deepcopy(self.owner._failed_jobs[resource["jobReference"]["jobId"]])
        request.status = 200
        self._send(200, resource)  # BigQuery refuses before running: the job is DONE at once
        return True

    def _fail_job(self, request: RecordedRequest, rule: Rule) -> None:
        """Answer a job insert (plain, multipart or resumable) with a job that will fail."""
        resource = self.owner._failed_job(request, rule)
        request.status = 200
        if request.query.get("uploadType") == ["resumable"]:
            token = uuid.uuid4().hex
            with self.owner._lock:
                self.owner._uploads[token] = resource
            location = f"{self.owner.endpoint}/__faults/upload/{token}"
            self._send(200, b"", [("Location", location)])
            return
        self._send(200, resource)

    def _failed_upload(self, request: RecordedRequest) -> None:
        """Accept the chunks of a resumable upload whose job will fail; answer at the end."""
        token = request.path.rsplit("/", 1)[1]
        with self.owner._lock:
            resource = self.owner._uploads.get(token)
        if resource is None:
            self._send(404, error_body(404, "notFound", "Not found: upload session"))
            return
        match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", self.headers.get("Content-Range", ""))
        if match and match.group(3) != "*" and int(match.group(2)) + 1 < int(match.group(3)):
            self._send(308, b"", [("Range", f"bytes=0-{match.group(2)}")])
        elif match and match.group(3) == "*":
            self._send(308, b"", [("Range", f"bytes=0-{match.group(2)}")])
        else:
            self._send(200, resource)

    def _forward(self, raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        owner = self.owner
        connection = http.client.HTTPConnection(owner.upstream_host, owner.upstream_port, timeout=600)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Host"] = f"{owner.upstream_host}:{owner.upstream_port}"
            headers["Content-Length"] = str(len(raw))
            connection.request(self.command, self.path, body=raw, headers=headers)
            response = connection.getresponse()
            body = response.read()
            upstream = f"http://{owner.upstream_host}:{owner.upstream_port}"
            out = [
                (k, v.replace(upstream, owner.endpoint) if k.lower() == "location" else v)
                for k, v in response.getheaders()
                if k.lower() not in _HOP_BY_HOP
            ]
            return response.status, out, body
        finally:
            connection.close()

    def _rewrite(self, request: RecordedRequest, status: int, body: bytes) -> bytes:
        """Learn dataset locations from inserts; report them from ``datasets.get``."""
        owner = self.owner
        if status >= 300:
            return body
        if request.method == POST and re.search(DATASETS_INSERT, request.path):
            if isinstance(request.body, dict) and request.body.get("location"):
                ref = request.body.get("datasetReference", {})
                key = f"{ref.get('projectId')}.{ref.get('datasetId')}"
                with owner._lock:
                    owner.dataset_locations.setdefault(key, str(request.body["location"]))
        if request.method == GET and re.search(DATASET_GET, request.path):
            try:
                resource = json.loads(body)
            except ValueError:
                return body
            ref = resource.get("datasetReference", {})
            with owner._lock:
                known = owner.dataset_locations.get(f"{ref.get('projectId')}.{ref.get('datasetId')}")
            if known is not None:
                resource["location"] = known
                return json.dumps(resource).encode()
        return body

    def _dispatch(self) -> None:
        try:
            self._handle()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch
