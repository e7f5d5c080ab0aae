"""The one way every process talks to the ML service."""

from edgeloop.mlclient.client import MLClient, get_ml_client, reset_ml_client

__all__ = ["MLClient", "get_ml_client", "reset_ml_client"]
