"""A kind written the README's way ("Job kinds of your own"), copied from the README as it stands, works."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from mediajobs.jobs import rows
from mediajobs.jobs.lifecycle import ParamsRejected
from tests.clips import generate_clip
from tests.jobs.conftest import Engine

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def readme_kinds() -> types.ModuleType:
    """The README's `myapp/kinds.py`, exactly as a user would copy it, imported as that module."""
    section = README.read_text().split("## Job kinds of your own", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert code.startswith("# myapp/kinds.py"), code[:80]
    module = types.ModuleType("myapp.kinds")
    exec(compile(code, f"{README}: myapp/kinds.py", "exec"), module.__dict__)
    return module


def test_the_readme_kind_resizes_a_video_reporting_progress_to_done(
    engine: Engine, readme_kinds: types.ModuleType, tmp_path: Path
) -> None:
    source = generate_clip(tmp_path / "in.mp4", duration=1.0, width=128, height=72, audio=False)
    job = engine.submit("myapp.resize", {"src": str(source), "width": 64})
    assert job.queue == "cpu" and job.max_attempts == 3

    done = engine.run_to_end(job.id)

    assert done.state == "succeeded", done.error
    assert done.result["size"] > 0
    assert (done.progress, done.stage) == (100.0, "Done")
    assert list(engine.settings.effective_temp_dir.iterdir()) == []  # ctx.temp_dir went with the attempt


def test_the_readme_kind_fails_a_width_below_one_at_once_with_invalid_params(
    engine: Engine, readme_kinds: types.ModuleType
) -> None:
    job = engine.submit("myapp.resize", {"src": "/nonexistent.mp4", "width": 0})

    done = engine.run_to_end(job.id)

    assert done.state == "failed"
    assert done.error == {"code": "invalid_params", "message": "width must be positive"}
    assert done.attempt == 1  # a PermanentError is not retried


def test_the_readme_kind_refuses_params_that_do_not_fit_its_model(
    engine: Engine, readme_kinds: types.ModuleType
) -> None:
    with pytest.raises(ParamsRejected) as refused:
        engine.submit("myapp.resize", {"src": "in.mp4", "width": "wide"})
    assert [error["loc"] for error in refused.value.errors] == [("width",)]
    assert list(rows.list_jobs(engine.db).items) == []
    assert engine.broker.messages == []
