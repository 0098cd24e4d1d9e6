"""A minimal Django project configured the way the plan configures bqrepo.

Only the plan's two settings select the backend; the tests set them (and
``BIGQUERY_EMULATOR_HOST`` for the stand-in) through the environment, as a
deployment would. With neither set, bqrepo uses the embedded default.
"""

import os

SECRET_KEY = "test-only"
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["testserver", "localhost"]
INSTALLED_APPS = ["bqrepo.contrib.django"]
ROOT_URLCONF = "project.urls"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# The plan's settings: BigQuery PROJECT.DATASET with Application Default Credentials.
GCP_PROJECT_ID = os.environ.get("GCP_PROJECT_ID", "")
BIGQUERY_DATASET = os.environ.get("BIGQUERY_DATASET", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # one line per BigQuery job: id, location, bytes processed and billed, cache hit
    "loggers": {"bqrepo": {"handlers": ["console"], "level": "INFO"}},
}
