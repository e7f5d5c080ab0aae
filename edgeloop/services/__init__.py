"""The domain services: what the system does, as plain functions and classes.

The lifecycle (``decide``, the ranking refresh), the discovery steps and their report,
retraining, live predictions and their accuracy, the feedback flusher, the stream consumer and
its dead letters, and the per-process resources they run with. Nothing here imports Celery:
the Celery tasks (``edgeloop.workers``), the CLI and the demo call these, and a unit test
imports them without a broker.
"""
