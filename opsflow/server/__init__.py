"""``opsflow serve``: event intake, the scheduler, run workers and the HTTP API in one process (FastAPI/uvicorn).

Importing this package costs nothing: FastAPI is imported by :mod:`opsflow.server.app` only.
"""
