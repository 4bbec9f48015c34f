"""Run-directory helpers shared by every step."""

from __future__ import annotations

import pytest

from tasks.io import StepError, prepared

pytestmark = pytest.mark.unit


def test_prepared_names_the_missing_file_and_the_step_that_writes_it(tmp_path):
    manifest = tmp_path / "data" / "manifest.json"
    with pytest.raises(StepError) as err:
        prepared(manifest)
    assert str(err.value) == f"{manifest} is missing: run the prepare step first"
    manifest.parent.mkdir()
    manifest.write_text("{}")
    assert prepared(manifest) == manifest


def test_no_step_writes_its_own_missing_prepare_message():
    """One home for the guard: the message is written in tasks/io.py only."""
    from pathlib import Path

    import tasks

    owners = [
        path.name
        for path in Path(tasks.__file__).parent.rglob("*.py")
        if "run the prepare step first" in path.read_text()
    ]
    assert owners == ["io.py"], owners
