"""Issue 11.2 and its "Done when": a real minimal Django project (tests/django_project).

Django can be configured once per process, so each scenario runs in a
subprocess, as ``manage.py`` would, with the project's directory as its
working directory and only the settings the scenario names in its environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from bqrepo.engine import bigquery_client
from bqrepo.settings import Settings
from bqrepo.testing.standin import LocalBigQuery

PROJECT = Path(__file__).parent / "django_project"
REPO = Path(__file__).resolve().parents[1]
_OURS = ("BQREPO_URL", "GCP_PROJECT_ID", "BIGQUERY_DATASET", "BIGQUERY_LOCATION",
         "BIGQUERY_EMULATOR_HOST", "BQREPO_DUCKDB_PATH", "DJANGO_SETTINGS_MODULE",
         "BQREPO_MAXIMUM_BYTES_BILLED", "BQREPO_JOB_LABELS")


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in the project with a clean bqrepo environment plus ``env``."""
    clean = {key: value for key, value in os.environ.items() if key not in _OURS}
    clean["PYTHONPATH"] = os.pathsep.join([str(REPO), str(PROJECT)])
    clean["DJANGO_SETTINGS_MODULE"] = "project.settings"
    return subprocess.run(
        args, cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=180
    )


_CHECKS = r'''
import io, json
import django
django.setup()
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

config = apps.get_app_config("bqrepo")
out = {"app": [type(config).__module__, type(config).__name__, config.name]}

def check(**overrides):
    stdout, stderr = io.StringIO(), io.StringIO()
    with override_settings(**overrides):
        try:
            call_command("check", stdout=stdout, stderr=stderr)
        except SystemCheckError as exc:
            return "ERROR " + str(exc)
    return stdout.getvalue() + stderr.getvalue()

for name, overrides in json.loads(input()).items():
    out[name] = check(**overrides)
print(json.dumps(out))
'''

_CASES: dict[str, tuple[dict[str, Any], str | None, str | None]] = {
    # name: (settings, expected id, setting the message names)
    "plan": ({"GCP_PROJECT_ID": "my-project", "BIGQUERY_DATASET": "analytics"}, None, None),
    "default_debug": ({}, None, None),
    "project": ({"GCP_PROJECT_ID": "Bad_Project", "BIGQUERY_DATASET": "a"}, "bqrepo.E001", "GCP_PROJECT_ID"),
    "dataset": ({"GCP_PROJECT_ID": "my-project", "BIGQUERY_DATASET": "my-dataset"}, "bqrepo.E002",
                "BIGQUERY_DATASET"),
    "location": ({"BIGQUERY_LOCATION": "us'; DROP"}, "bqrepo.E003", "BIGQUERY_LOCATION"),
    "url": ({"BQREPO_URL": "postgresql://x/y"}, "bqrepo.E004", "BQREPO_URL"),
    "emulator": ({"BIGQUERY_EMULATOR_HOST": "no-port"}, "bqrepo.E005", "BIGQUERY_EMULATOR_HOST"),
    "no_dataset": ({"GCP_PROJECT_ID": "my-project"}, "bqrepo.E006", "BIGQUERY_DATASET"),
    "url_no_dataset": ({"BQREPO_URL": "bigquery://my-project"}, "bqrepo.E006", "BIGQUERY_DATASET"),
    "production_default": ({"DEBUG": False}, "bqrepo.W001", "GCP_PROJECT_ID"),
    "url_options": ({"BQREPO_URL": "bigquery://my-project/d?maximum_bytes_billed=1"}, "bqrepo.E004", "BQREPO_URL"),
    "bytes_limit": ({"BQREPO_MAXIMUM_BYTES_BILLED": "lots"}, "bqrepo.E007", "BQREPO_MAXIMUM_BYTES_BILLED"),
    "bytes_limit_ok": ({"BQREPO_MAXIMUM_BYTES_BILLED": 2**40}, None, None),
    "job_labels": ({"BQREPO_JOB_LABELS": "Team=risk"}, "bqrepo.E008", "BQREPO_JOB_LABELS"),
    "job_labels_dict": ({"BQREPO_JOB_LABELS": {"team": "risk", "env": "prod"}}, None, None),
}


def test_the_app_runs_and_manage_py_check_names_each_bad_setting(tmp_path: Path) -> None:
    cases = {name: settings for name, (settings, _, _) in _CASES.items()}
    result = subprocess.run(
        [sys.executable, "-c", _CHECKS],
        input=json.dumps(cases),
        cwd=tmp_path,
        env={**{k: v for k, v in os.environ.items() if k not in _OURS},
             "PYTHONPATH": os.pathsep.join([str(REPO), str(PROJECT)]),
             "DJANGO_SETTINGS_MODULE": "project.settings"},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out.pop("app") == ["bqrepo.contrib.django.apps", "BqrepoConfig", "bqrepo.contrib.django"]
    for name, (_, check_id, setting) in _CASES.items():
        text = out[name]
        if check_id is None:
            assert text.strip() == "System check identified no issues (0 silenced).", (name, text)
            continue
        assert f"{check_id}" in text and setting in text, (name, text)
        assert text.startswith("ERROR") == check_id.startswith("bqrepo.E"), (name, text)
        # one problem, one message
        assert text.count("(bqrepo.") == 1, (name, text)


def test_the_plans_django_project_on_the_standin(standin: LocalBigQuery, tmp_path: Path) -> None:
    """The issue's "Done when", with no BQREPO_URL and only the plan's settings + the stand-in host."""
    dataset = f"t_{uuid.uuid4().hex[:12]}"
    env = {"GCP_PROJECT_ID": standin.project, "BIGQUERY_DATASET": dataset,
           "BIGQUERY_EMULATOR_HOST": standin.host}
    python = sys.executable

    check = _run([python, "manage.py", "check"], PROJECT, **env)
    assert check.returncode == 0, check.stderr
    assert "System check identified no issues" in check.stdout

    no_network = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network used')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from bqrepo.service import default_service\n"
        "print(type(default_service.writer).__name__, default_service.events.engine.url)\n"
    )
    imported = _run([python, "-c", no_network], tmp_path, **env)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.split()[0] == "AutoBigQueryWriter"

    migrated = _run([python, "-m", "bqrepo.cli", "migrate"], PROJECT, **env)
    assert migrated.returncode == 0, migrated.stderr
    assert f"BigQuery {standin.project}.{dataset}" in migrated.stdout

    views = r'''
import json
import django
django.setup()
from django.test import Client
client = Client()
events = [{"title": "Port strike", "event_type": "protest", "risk_score": 0.7,
           "mentioned_at": "2026-11-20T10:00:00+00:00"}]
mentions = [{"entity_id": "pdvsa", "event_id": "e1", "mentioned_at": "2026-11-20T10:00:00+00:00"}]
posted = [client.post(f"/insert/{t}/", json.dumps(rows), content_type="application/json").json()
          for t, rows in (("events", events), ("mentions", mentions))]
trending = client.get("/trending/").json()
risk = client.get("/risk/", {"start": "2026-11-19T00:00:00+00:00", "end": "2026-11-21T00:00:00+00:00"}).json()
print(json.dumps({"posted": posted, "trending": trending, "risk": risk}))
'''
    served = _run([python, "-c", views], PROJECT, **env)
    assert served.returncode == 0, served.stderr
    out = json.loads(served.stdout.strip().splitlines()[-1])
    assert out["posted"] == [{"written": 1, "rejected": []}, {"written": 1, "rejected": []}]
    assert [e["entity_id"] for e in out["trending"]["entities"]] == ["pdvsa"]
    assert [(b["bucket_start"][:10], b["event_count"], b["max_risk"]) for b in out["risk"]["buckets"]] == [
        ("2026-11-20", 1, 0.7)
    ]
    # the project's LOGGING turns on bqrepo's INFO lines: the backend once, each job once
    assert served.stderr.count(f"bqrepo backend: BigQuery {standin.project}.{dataset}") == 1
    assert served.stderr.count("BigQuery query job ") == 2

    client = bigquery_client(Settings(project_id=standin.project, dataset=dataset, emulator_host=standin.host))
    table = client.get_table(f"{standin.project}.{dataset}.events")
    assert table.time_partitioning.field == "mentioned_at"
