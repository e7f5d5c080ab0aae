"""The one way every process talks to the ML service."""

from edgeloop.mlclient.client import MLClient
from edgeloop.mlclient.process import get_cached_ml_client, get_ml_client, reset_ml_client

__all__ = ["MLClient", "get_cached_ml_client", "get_ml_client", "reset_ml_client"]
