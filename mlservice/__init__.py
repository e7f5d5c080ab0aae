"""The ML service: outcome predictions, the strategy model, feedback, training jobs and the registry.

``edgeloop.mlservice.server.create_server`` builds a ready-to-start gRPC server; ``edgeloop ml serve``
runs it together with the HTTP API (``edgeloop.mlservice.http_api``).
"""
