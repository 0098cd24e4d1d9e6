"""Views that use bqrepo the documented way: ``get_service()`` per request."""

import json
from dataclasses import asdict
from datetime import datetime

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from bqrepo.contrib.django import get_service


@csrf_exempt
def insert(request: HttpRequest, table: str) -> JsonResponse:
    records = json.loads(request.body)
    service = get_service()
    result = service.insert_events(records) if table == "events" else service.insert_entity_mentions(records)
    return JsonResponse({"written": result.written, "rejected": [r.reason for r in result.rejected]})


def trending(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"entities": [asdict(e) for e in get_service().get_entity_trending()]})


def risk(request: HttpRequest) -> JsonResponse:
    start = datetime.fromisoformat(request.GET["start"])
    end = datetime.fromisoformat(request.GET["end"])
    buckets = get_service().get_risk_trends(start, end, bucket_size="DAY")
    return JsonResponse({"buckets": [asdict(b) for b in buckets]})


urlpatterns = [
    path("insert/<str:table>/", insert),
    path("trending/", trending),
    path("risk/", risk),
]
