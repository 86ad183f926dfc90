"""A minimal Django project on datatier's router (``examples.django_notes``).

The aliases come from the datatier configuration (``$DATATIER_CONFIG``): ``default`` is the
primary, ``replica1``/``replica2`` the replicas; all MySQL (no sqlite). The router reads the
monitor's snapshot only. ``tests/integration/routing/test_router_django.py`` runs it on the sandbox.
"""

from __future__ import annotations

import os

from datatier.routing.django import databases

SECRET_KEY = "example-only-not-secret"  # noqa: S105
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["examples.django_notes.notes"]

DATABASES = databases(os.environ.get("DATATIER_CONFIG"), name="django_notes")
DATABASE_ROUTERS = ["datatier.routing.django.Router"]
DATATIER_ROUTING = {"max_lag": 2.0, "read_your_writes": True}
