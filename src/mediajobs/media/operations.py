"""Operations on a ready asset: what each takes (the job kinds that do them are in `media/kinds/operations`).

Each operation's request body is its job's params: one model here is both the route's body and the kind's
params. The toolkit (`mask.Region`, `cut.Range`) takes plain values; `to_region` and `to_range` convert to
them. Mask and remove-frames make a new asset whose parent is the source; it then runs the normal pipeline.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mediajobs.db.models import Media
from mediajobs.db.session import Database
from mediajobs.errors import Conflict
from mediajobs.jobs.hooks import Services
from mediajobs.media import assets, titles
from mediajobs.storage import for_process
from mediajobs.toolkit import clip, cut, mask, sound
from mediajobs.toolkit.probe import Probe


class RegionIn(BaseModel):
    """A rectangle in source pixels, masked from `start` to `end` seconds (`end: null`: to the end)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    x: int = Field(ge=0)
    y: int = Field(ge=0)
    w: int = Field(gt=0)
    h: int = Field(gt=0)
    start: float = Field(default=0.0, ge=0)
    end: float | None = Field(default=None, ge=0)
    style: mask.Style = "blur"

    @model_validator(mode="after")
    def _times(self) -> RegionIn:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start (or null for 'until the end')")
        return self

    def to_region(self) -> mask.Region:
        return mask.Region(**self.model_dump())


class AudioRangeIn(BaseModel):
    """Seconds [start, end) of the sound to silence (`mute`) or cover with a 1 kHz tone (`bleep`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    start: float = Field(ge=0)
    end: float = Field(gt=0)
    style: sound.Style = "mute"

    @model_validator(mode="after")
    def _order(self) -> AudioRangeIn:
        if self.end <= self.start:
            raise ValueError("end must be after start (ranges are [start, end) in seconds)")
        return self

    def to_range(self) -> sound.Range:
        return sound.Range(self.start, self.end, self.style)


class MaskCreate(BaseModel):
    """Regions to mask and what to do with the sound, into a new asset; the `media.mask` job it starts has
    this body as its params."""

    model_config = ConfigDict(extra="forbid")
    kind: ClassVar[str] = "media.mask"
    operation: ClassVar[str] = "mask"
    list_field: ClassVar[str] = "regions"
    regions: list[RegionIn] = Field(default_factory=list, max_length=200)
    audio: sound.Mode = "keep"
    audio_ranges: list[AudioRangeIn] = Field(default_factory=list, max_length=200)
    pipeline: assets.Pipeline | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> MaskCreate:
        if self.audio_ranges and self.audio != "keep":
            raise ValueError(
                f'audio_ranges edit the kept sound; with audio "{self.audio}" leave them out '
                '(or set audio to "keep")'
            )
        if not self.regions and not self.to_sound().changes:
            raise ValueError('a mask needs regions, audio_ranges, or audio "mute" or "remove"')
        return self

    def to_sound(self) -> sound.Sound:
        return sound.Sound(self.audio, tuple(r.to_range() for r in self.audio_ranges))

    def checked(self, probe: Probe) -> tuple[list[mask.Region], sound.Sound]:
        """The regions clipped to the frame and the sound checked; InvalidRegion or InvalidSound naming what
        does not fit the source."""
        return mask.checked([r.to_region() for r in self.regions], self.to_sound(), probe)


class RangeIn(BaseModel):
    """Seconds of the source to remove, `end` exclusive."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    start: float = Field(ge=0)
    end: float = Field(gt=0)

    @model_validator(mode="after")
    def _order(self) -> RangeIn:
        if self.end <= self.start:
            raise ValueError("end must be after start (ranges are [start, end) in seconds)")
        return self

    def to_range(self) -> cut.Range:
        return (self.start, self.end)


class RemoveFramesCreate(BaseModel):
    """Ranges to cut out into a new asset; the `media.remove_frames` job has this body as its params."""

    model_config = ConfigDict(extra="forbid")
    kind: ClassVar[str] = "media.remove_frames"
    operation: ClassVar[str] = "remove_frames"
    list_field: ClassVar[str] = "ranges"
    ranges: list[RangeIn] = Field(min_length=1, max_length=1000)
    pipeline: assets.Pipeline | None = None

    def merged(self, duration: float, fps: float | None) -> list[cut.Range]:
        """The ranges snapped to frames and merged; InvalidRanges naming one that does not fit."""
        return cut.merge_ranges([r.to_range() for r in self.ranges], duration, fps=fps)


class CropIn(BaseModel):
    """Cut the picture to `aspect` (as shown) around the horizontal centre `x` (0 left edge, 1 right edge)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    aspect: clip.Aspect
    x: float = Field(default=0.5, ge=0, le=1)


class ClipCreate(BaseModel):
    """The frames of [start, end) (seconds) into a new asset; the `media.clip` job has this body as params."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    kind: ClassVar[str] = "media.clip"
    operation: ClassVar[str] = "clip"
    start: float = Field(ge=0)
    end: float = Field(gt=0)
    crop: CropIn | None = None
    pipeline: assets.Pipeline | None = None

    @model_validator(mode="after")
    def _order(self) -> ClipCreate:
        if self.end <= self.start:
            raise ValueError("end must be after start (a clip is [start, end) in seconds)")
        return self

    def to_crop(self) -> clip.Crop | None:
        return clip.Crop(self.crop.aspect, self.crop.x) if self.crop is not None else None

    def window(self, probe: Probe) -> tuple[float, float]:
        """[start, end) on the source's frames; InvalidClip naming the field when it does not fit."""
        return clip.window(self.start, self.end, probe, crop=self.to_crop())


class ReprocessCreate(BaseModel):
    """The pipeline to rebuild from the original (default: the asset's own)."""

    model_config = ConfigDict(extra="forbid")
    pipeline: list[assets.Step] | None = None


class FromParent(BaseModel):
    """How a derived asset's ladder may come from its parent's (`hls.reuse`): the parent's HLS version as
    the operation found it, and the edit's runs of frames; or, in `reason`, why it may not."""

    model_config = ConfigDict(extra="forbid")
    # The parent's `hls.path` (its own prefix is prepended: nothing outside the parent is read).
    version: str | None = Field(default=None, pattern=r"^hls/[0-9a-f]{1,32}$")
    edit: dict[str, Any] | None = None
    reason: str | None = None


class ProcessParams(BaseModel):
    """The `media.process` job's params: the steps to make from the original; `reprocess` rebuilds them;
    `from_parent`: a derived asset's first ladder, built from its parent's where the edit left it alone."""

    model_config = ConfigDict(extra="forbid")
    pipeline: list[assets.Step] = assets.DEFAULT_PIPELINE
    reprocess: bool = False
    from_parent: FromParent | None = None


def ready_source(db: Database, media_id: str) -> Media:
    """The asset an operation reads: NotFound when there is none, Conflict unless it is ready and probed."""
    media = assets.get_media(db, media_id)
    if media.state != assets.READY:
        raise Conflict(f"media {media.id} is {media.state}; operations need a ready asset")
    if not media.probe:
        raise Conflict(f"media {media.id} has no probe data; reprocess it first")
    return media


Derivation = MaskCreate | RemoveFramesCreate | ClipCreate


def derive(db: Database, media_id: str, params: Derivation) -> Media:
    """The new asset (not yet recorded) an operation makes from a ready source the request fits.

    Refuses at once what the job would refuse: NotFound, Conflict (not ready, no video to mask), or the
    toolkit's InvalidRegion / InvalidRanges / InvalidClip naming what masks, removes or keeps nothing.
    """
    source = ready_source(db, media_id)
    probe = source.probe or {}
    if isinstance(params, MaskCreate):
        if params.regions and (not probe.get("width") or not probe.get("height")):
            raise Conflict(f"media {source.id} has no video to mask; leave regions out to edit its sound")
        if params.to_sound().changes and not probe.get("audio_codec"):
            what = "audio_ranges" if params.audio_ranges else "audio"
            raise Conflict(f"media {source.id} has no sound; leave {what} out")
        params.checked(recorded_probe(probe))
    elif isinstance(params, ClipCreate):
        params.window(recorded_probe(probe))
    else:
        params.merged(probe["duration"], fps=probe.get("fps"))
    done = params.model_dump(mode="json", exclude={"pipeline"})
    return assets.new_media(
        source={"parent_id": source.id, "type": params.operation, **done},
        title=titles.derived(source.title, params.operation, done, probe.get("duration")),
        parent_id=source.id,
        pipeline=params.pipeline,
    )


def recorded_probe(public: dict[str, Any]) -> Probe:
    """The toolkit's Probe from an asset's recorded `probe` JSON (what the checks before a job need)."""
    return Probe(
        duration=float(public["duration"]),
        size=int(public.get("size") or 0),
        format_name="",
        width=public.get("width"),
        height=public.get("height"),
        fps=public.get("fps"),
        video_codec=public.get("video_codec"),
        audio_codec=public.get("audio_codec"),
        rotation=0,
        bit_rate=None,
        audio_channels=None,
        audio_sample_rate=None,
        nb_frames=None,
    )


def reprocess_params(source: Media, params: ReprocessCreate | None) -> ProcessParams:
    """The `media.process` params that rebuild the source's derived files; InvalidParams for a pipeline that
    makes something from an HLS ladder the asset neither has nor is to get."""
    asked = params.pipeline if params is not None else None
    steps = asked or source.pipeline or assets.DEFAULT_PIPELINE
    assets.check_pipeline(steps, has_hls=bool(source.hls))
    return ProcessParams.model_validate({"pipeline": steps, "reprocess": True})


def remove_asset(services: Services, media_id: str) -> None:
    """Delete every object of an asset, then its record."""
    for_process(services.settings).delete_prefix(assets.prefix(media_id))
    assets.delete_record(services.db, media_id)
