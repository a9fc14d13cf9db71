"""The `tripsage` console script: one module per command group (`main` holds the app and `up`)."""

from __future__ import annotations

from tripsage.cli.main import app, main

__all__ = ["app", "main"]
