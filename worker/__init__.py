"""Celery workers of Aura Render: thin tasks over `worker.pipeline`."""
