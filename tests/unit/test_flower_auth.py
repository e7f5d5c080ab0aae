"""Flower's credentials: never the default or an empty password; the error names the setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edgeloop.core.errors import ConfigurationError
from edgeloop.flower_auth import DEFAULT_PASSWORD, basic_auth
from edgeloop.core.settings import settings_with
from tests.support.processes import ROOT


@pytest.mark.parametrize("password", [DEFAULT_PASSWORD, ""])
def test_the_default_or_an_empty_password_is_refused_naming_the_setting(password):
    with pytest.raises(ConfigurationError, match="set EDGELOOP_FLOWER_PASSWORD$"):
        basic_auth(settings_with(flower_password=password), {})


def test_a_chosen_password_is_used():
    assert basic_auth(settings_with(flower_user="ops", flower_password="s3cret"), {}) == ["ops:s3cret"]


def test_flower_basic_auth_replaces_the_settings_and_is_checked_too():
    default = settings_with(flower_password=DEFAULT_PASSWORD)
    assert basic_auth(default, {"FLOWER_BASIC_AUTH": "a:x1,b:y2"}) == ["a:x1", "b:y2"]
    with pytest.raises(ConfigurationError, match="set FLOWER_BASIC_AUTH$"):
        basic_auth(default, {"FLOWER_BASIC_AUTH": f"a:x1,b:{DEFAULT_PASSWORD}"})
    with pytest.raises(ConfigurationError, match="set FLOWER_BASIC_AUTH$"):
        basic_auth(default, {"FLOWER_BASIC_AUTH": "nopassword"})


def test_flowerconfig_exits_with_one_line_on_the_default_password():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGELOOP_", "FLOWER_"))}
    env.update(PYTHONPATH=str(ROOT), EDGELOOP_CONFIG=os.devnull)
    # Flower executes its config file the same way (tornado's parse_config_file: exec)
    proc = subprocess.run([sys.executable, "-c", "exec(open('flowerconfig.py').read(), {})"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "Flower will not start with the default or an empty password: set EDGELOOP_FLOWER_PASSWORD"]
