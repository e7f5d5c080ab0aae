"""docs/settings.md and config/config.yaml.example are generated from settings.py: keep them current."""

from edgeloop.settings_doc import DOC_PATH, EXAMPLE_PATH, field_docs, render_markdown, render_yaml_example
from edgeloop.core.settings import Settings


def test_settings_reference_is_current():
    assert DOC_PATH.read_text() == render_markdown(), "run `make docs`"
    assert EXAMPLE_PATH.read_text() == render_yaml_example(), "run `make docs`"


def test_every_setting_is_documented():
    docs = field_docs()
    assert {d.name for d in docs} == set(Settings.model_fields)
    assert [d.name for d in docs if not d.comment] == []


def test_example_file_is_valid_yaml_that_loads_as_settings(tmp_path, monkeypatch):
    import yaml

    uncommented = "\n".join(line[2:] for line in EXAMPLE_PATH.read_text().splitlines()
                            if line.startswith("# ") and ": " in line and not line.startswith("# ---")
                            and line[2:].split(":")[0].isidentifier())
    data = yaml.safe_load(uncommented)
    assert set(data) == set(Settings.model_fields)
    path = tmp_path / "config.yaml"
    path.write_text(uncommented)
    monkeypatch.setenv("EDGELOOP_CONFIG", str(path))
    assert Settings().stream_key == "backtests.finished"
