"""requirements/floors.txt is pyproject.toml's floors, and every direct dependency has one."""

import pytest

from requirements.floors import FLOORS_PATH, FloorError, canonical, floor_pin, floors, load_pyproject, render


def test_floors_file_is_current():
    assert FLOORS_PATH.read_text() == render(load_pyproject()), "run `python -m requirements.floors --write`"


def test_every_direct_dependency_runtime_and_dev_is_pinned_at_its_floor():
    pyproject = load_pyproject()
    pins = floors(pyproject)
    assert pins["redis"] == "redis==5.3"
    assert pins["celery"] == "celery[redis]==5.5"  # extras kept: the pins are installed as requirements
    assert "pytest" in pins and "psycopg" in pins
    listed = [*pyproject["project"]["dependencies"], *pyproject["project"]["optional-dependencies"]["dev"]]
    assert len(pins) == len(listed)


@pytest.mark.parametrize("requirement, pin", [
    ("celery[redis]>=5.5,<6", ("celery", "celery[redis]==5.5")),
    ("protobuf >= 7.35.1, < 8", ("protobuf", "protobuf==7.35.1")),
    ("Pydantic_Settings>=2.3", ("pydantic-settings", "pydantic-settings==2.3")),
])
def test_a_floor_is_the_greater_or_equal_bound(requirement, pin):
    assert floor_pin(requirement) == pin


@pytest.mark.parametrize("requirement", ["numpy", "numpy<2", "numpy>1.26", "numpy~=1.26", "numpy>=1.26,>=1.27",
                                         "numpy>=1.26; python_version<'3.12'"])
def test_a_dependency_without_a_single_floor_is_refused(requirement):
    with pytest.raises(FloorError):
        floor_pin(requirement)


def test_names_are_compared_canonically():
    assert canonical("Foo_Bar.baz") == canonical("foo-bar-baz") == "foo-bar-baz"
