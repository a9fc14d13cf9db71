"""The API as an importable ASGI app: `uvicorn tripsage.api.main:app`."""
