"""The bottom layer: settings, errors, the event codec, scoring, metrics and Redis connections.

Everything else in edgeloop may import these; they import nothing of edgeloop's above them.
"""
