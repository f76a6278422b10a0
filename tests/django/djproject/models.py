"""A model for the async pickling tests (its table is created by the test that needs it)."""

from __future__ import annotations

from django.db import models


class Shelf(models.Model):
    """Pickling a lazy QuerySet of these (or one with deferred fields) queries the database."""

    name = models.CharField(max_length=20)
    note = models.TextField(default="")
