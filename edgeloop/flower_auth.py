"""Flower's credentials (read by ``flowerconfig.py``): never the default password.

Flower shows task arguments and can revoke tasks and shut workers down, and in docker-compose
it listens on every interface of its container; a password everyone can read in this
repository would be no password. So Flower refuses to start with the default (or an empty)
password and says, in one line, which setting to change. The demo does not start Flower.
"""

from __future__ import annotations

from typing import Mapping

from edgeloop.core.errors import ConfigurationError
from edgeloop.core.settings import Settings

DEFAULT_PASSWORD = Settings.model_fields["flower_password"].default


def basic_auth(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """Flower's ``basic_auth`` option: ``FLOWER_BASIC_AUTH`` (user:password[,user:password…])
    when set, else ``flower_user:flower_password``. ``ConfigurationError`` if any password is
    the default or empty."""
    if environ.get("FLOWER_BASIC_AUTH"):
        pairs, where = environ["FLOWER_BASIC_AUTH"].split(","), "FLOWER_BASIC_AUTH"
    else:
        pairs, where = [f"{settings.flower_user}:{settings.flower_password}"], "EDGELOOP_FLOWER_PASSWORD"
    if any(pair.partition(":")[2] in ("", DEFAULT_PASSWORD) for pair in pairs):
        raise ConfigurationError(f"Flower will not start with the default or an empty password: set {where}")
    return pairs
