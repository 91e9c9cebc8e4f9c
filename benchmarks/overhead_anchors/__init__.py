"""Anchor systems for ``benchmarks/overhead.py``: a bare FastAPI floor, Celery, Ray Serve."""
