"""What `media.process` is asked to make is checked by one model, whoever asks (route, kind, runner)."""

from __future__ import annotations

import pytest

from mediajobs import bootstrap
from mediajobs.config import Settings
from mediajobs.jobs import lifecycle
from mediajobs.jobs.lifecycle import ParamsRejected
from mediajobs.media.operations import ProcessParams


def test_media_process_refuses_a_step_no_pipeline_has() -> None:
    bootstrap.load_kinds(Settings())

    with pytest.raises(ParamsRejected) as refused:
        lifecycle.check_params("media.process", {"pipeline": ["hls", "sparkle"]})

    assert [error["loc"] for error in refused.value.errors] == [("pipeline", 1)]
    assert lifecycle.check_params("media.process", {"pipeline": ["thumbnail"]}).params is ProcessParams


def test_media_process_makes_the_whole_pipeline_unless_told_otherwise() -> None:
    assert ProcessParams().pipeline == ["hls", "thumbnail", "mp4", "audio", "storyboard"]
    assert ProcessParams.model_validate({"pipeline": []}).pipeline == []
