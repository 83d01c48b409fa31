"""Scale-out on separate hosts: PostgreSQL + Redis + S3 on one, the API on another, workers on two more.

Each host is a network namespace with its own directories and /tmp (tests/hosts/netns.py): nothing but the
network and the bucket is shared, so a worker that read a path the API wrote would fail here.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from mediajobs.testing.servers import wait_for
from tests.hosts.cluster import FAST, Member, ScaleOut
from tests.media_api.helpers import check_plays, get_media, upload, wait_job, wait_media, wait_settled

JSON = dict[str, Any]
HEARTBEAT_TIMEOUT_S = float(FAST["MEDIAJOBS_HEARTBEAT_TIMEOUT_S"])
# After the heartbeat timeout: the reaper's round (every second here), the relay's, the claim.
NOTICE_S = HEARTBEAT_TIMEOUT_S + 4.0
OUTAGE_S = 20.0


def at(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def worker_host(cluster: ScaleOut, job_id: str) -> str:
    """The host whose worker holds (or last held) the job, from the job row (`worker` is `host:pid`)."""
    rows = cluster.sql("SELECT worker FROM jobs WHERE id = %s", job_id)
    assert rows and rows[0][0], f"job {job_id} names no worker: {rows}"
    return str(rows[0][0]).split(":", 1)[0]


def transcoding(api: httpx.Client, job_id: str) -> JSON:
    """The job once its transcode is under way (past fetching and probing, far from done)."""

    def check() -> JSON | None:
        job: JSON = api.get(f"/api/v1/jobs/{job_id}").json()
        assert job["state"] in ("queued", "running"), job
        return job if job["state"] == "running" and 10 <= job["progress"] < 80 else None

    return wait_for(check, timeout_s=60, message=f"job {job_id} to be transcoding")  # type: ignore[return-value]


def files_of(media: JSON) -> tuple[str, str]:
    """The asset's HLS directory and thumbnail path, relative to its prefix (from its public URLs)."""
    master = urlsplit(media["hls"]["master_url"]).path.split("/files/", 1)[1]
    return master.rsplit("/", 1)[0] + "/", urlsplit(media["thumbnail_url"]).path.split("/files/", 1)[1]


def outputs_of(media: JSON) -> set[str]:
    """The files made from the asset's ladder that its JSON lists (downloads, storyboard), by path."""
    stored = lambda url: urlsplit(url).path.split("/files/", 1)[1]  # noqa: E731
    urls = [d["url"] for d in media["downloads"] if d["type"] != "original" and d["url"]]
    if media["storyboard"]:
        urls += [media["storyboard"]["vtt_url"], *media["storyboard"]["images"]]
    return {stored(url) for url in urls}


def stray_files(cluster: ScaleOut, media: JSON) -> list[str]:
    """What the bucket holds for the asset beyond its original, its final HLS version and thumbnail and the
    outputs its JSON lists."""
    hls_dir, thumbnail = files_of(media)
    prefix = f"media/{media['id']}/"
    keys = cluster.stored().keys(prefix)
    assert any(k == f"{prefix}{hls_dir}master.m3u8" for k in keys), keys
    final = (f"{prefix}original/", prefix + hls_dir)
    listed = {prefix + path for path in (thumbnail, *outputs_of(media))}
    return [k for k in keys if not k.startswith(final) and k not in listed]


def assert_only_final_files(cluster: ScaleOut, media: JSON) -> None:
    """Nothing else is left in the bucket, once the cleanup jobs the asset's end queued have run."""
    try:
        wait_for(lambda: not stray_files(cluster, media), timeout_s=20, interval_s=0.5, message="no stray")
    except AssertionError:
        raise AssertionError(f"stray objects of media {media['id']}: {stray_files(cluster, media)}") from None


def process_job(api: httpx.Client, created: JSON) -> str:
    job_id: str = created["job"]["id"]
    assert api.get(f"/api/v1/jobs/{job_id}").json()["kind"] == "media.process"
    return job_id


def test_hosts_share_only_the_network_and_reach_nothing_beyond_it(cluster: ScaleOut) -> None:
    subnet = cluster.network.prefix + "."
    for host in cluster.network.hosts.values():
        assert set(host.addresses()) == {"127.0.0.1/8", f"{host.address}/24"}, host.name
        assert all(r.startswith(cluster.network.subnet) for r in host.routes()), (host.name, host.routes())
        assert host.address.startswith(subnet)
    worker = cluster.workers[0].host
    # What the API host writes in its own directories or /tmp does not exist on a worker host.
    (cluster.api.host.data / "written-by-api").write_text("x")
    (cluster.api.host.tmp / "written-by-api").write_text("x")
    looks = worker.run(
        [
            sys.executable,
            "-c",
            "import os, sys; print([os.path.exists(p) for p in sys.argv[1:]])",
            str(cluster.api.host.data / "written-by-api"),
            "/tmp/written-by-api",
        ],
        env=cluster.env,
    )
    assert looks.stdout.strip() == "[False, False]", looks.stdout


def test_upload_becomes_ready_with_its_work_done_on_worker_hosts(
    cluster: ScaleOut, host_clips: dict[str, Path]
) -> None:
    with cluster.client() as api:
        created = upload(api, host_clips["small"])
        media = wait_media(api, created["media"]["id"], "ready", "failed")
        assert media["state"] == "ready", media
        for job_id in media["jobs"]:
            job = wait_job(api, job_id, "succeeded", "failed", "cancelled", timeout_s=30)
            assert job["state"] == "succeeded", job
            assert worker_host(cluster, job_id) in ("worker-1", "worker-2")
        # The API serves from the bucket what the workers wrote there.
        check_plays(api, media)
        assert_only_final_files(cluster, wait_settled(api, media["id"]))


def test_api_host_restarted_while_jobs_run_loses_no_accepted_job(
    cluster: ScaleOut, host_clips: dict[str, Path]
) -> None:
    accepted: list[str] = []
    stop = threading.Event()

    def submit_all_along() -> None:
        with cluster.client() as client:
            while not stop.wait(0.05):
                try:
                    response = client.post(
                        "/api/v1/jobs", json={"kind": "test.sleep", "params": {"seconds": 0.5}}
                    )
                except httpx.TransportError:
                    continue  # the API host is down: nothing was accepted
                if response.status_code == 202:
                    accepted.append(response.json()["id"])

    with cluster.client() as api:
        created = upload(api, host_clips["long"])
        submitter = threading.Thread(target=submit_all_along, daemon=True)
        submitter.start()
        try:
            transcoding(api, process_job(api, created))
            count = len(accepted)
            wait_for(lambda: len(accepted) > count + 5, message="jobs accepted before the restart")
            cluster.api.host.kill_all()
            assert cluster.api.proc is not None
            cluster.api.proc.wait_exit(5)
            cluster.start_api()
            count = len(accepted)
            wait_for(lambda: len(accepted) > count + 5, message="jobs accepted after the restart")
        finally:
            stop.set()
            submitter.join()
        media = wait_media(api, created["media"]["id"], "ready", "failed", timeout_s=90)
        assert media["state"] == "ready", media
        for job_id in accepted:
            job = wait_job(api, job_id, "succeeded", "failed", "cancelled", timeout_s=60)
            assert job["state"] == "succeeded", job


def test_worker_host_killed_mid_transcode_hands_its_asset_to_the_other_host(
    cluster: ScaleOut, host_clips: dict[str, Path]
) -> None:
    with cluster.client() as api:
        created = upload(api, host_clips["long"])
        job_id = process_job(api, created)
        transcoding(api, job_id)
        dead = cluster.member(worker_host(cluster, job_id))
        try:
            dead.host.kill_all()
            killed_at = time.time()
            media = wait_media(api, created["media"]["id"], "ready", "failed", timeout_s=120)
            assert media["state"] == "ready", media
            # The asset is ready a moment before its job's own end is written.
            job = wait_job(api, job_id, "succeeded", "failed", "cancelled", timeout_s=30)
            assert job["state"] == "succeeded" and job["attempt"] == 2, job
            assert worker_host(cluster, job_id) != dead.host.name
            work_s = at(job["finished_at"]) - at(job["started_at"])
            assert at(job["started_at"]) - killed_at < NOTICE_S, job
            assert at(media["updated_at"]) - killed_at < NOTICE_S + work_s + 2, (media, work_s)
            check_plays(api, media)
            assert_only_final_files(cluster, wait_settled(api, media["id"]))
        finally:
            restart(cluster, dead)
        # The restarted worker removes what the killed attempt left in its temp directory.
        wait_for(
            lambda: not dead.job_dirs(), timeout_s=15, message=f"{dead.host.name}'s temp dir to be swept"
        )


def restart(cluster: ScaleOut, member: Member) -> None:
    if member.proc is not None:
        member.proc.stop(timeout_s=5)
    cluster.start_worker(member)


def snapshot(api: httpx.Client, job_id: str, media_id: str) -> tuple[JSON, JSON]:
    """What a late write could change: the job's outcome, the asset's state and files (URL paths)."""
    job = api.get(f"/api/v1/jobs/{job_id}").json()
    media = get_media(api, media_id)
    path = lambda url: urlsplit(url).path if url else None  # noqa: E731 - tokens expire, paths do not
    hls = media["hls"] and [
        path(media["hls"]["master_url"]),
        *(path(v["url"]) for v in media["hls"]["variants"]),
    ]
    job_keys = ("state", "attempt", "result", "error", "finished_at", "progress")
    media_keys = ("state", "error", "updated_at", "probe", "playable_at")
    return (
        {k: job[k] for k in job_keys},
        {**{k: media.get(k) for k in media_keys}, "hls": hls, "thumbnail": path(media["thumbnail_url"])},
    )


def test_worker_host_cut_off_mid_transcode_is_replaced_and_its_late_writes_change_nothing(
    cluster: ScaleOut, host_clips: dict[str, Path]
) -> None:
    with cluster.client() as api:
        created = upload(api, host_clips["long"])
        media_id = created["media"]["id"]
        job_id = process_job(api, created)
        transcoding(api, job_id)
        cut = cluster.member(worker_host(cluster, job_id))
        cut.host.set_link(up=False)
        try:
            cut_at = time.monotonic()
            wait_for(
                lambda: api.get(f"/api/v1/jobs/{job_id}").json()["attempt"] >= 2,
                timeout_s=OUTAGE_S - (time.monotonic() - cut_at),
                message="the job to run again elsewhere while the host is cut off",
            )
            rerun = wait_job(api, job_id, "running", "succeeded", timeout_s=10)
            assert rerun["attempt"] == 2, rerun
            assert worker_host(cluster, job_id) != cut.host.name
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_at)))
        finally:
            cut.host.set_link(up=True)
        media = wait_media(api, media_id, "ready", "failed", timeout_s=90)
        assert media["state"] == "ready", media
        wait_job(api, job_id, "succeeded", "failed", "cancelled", timeout_s=30)
        wait_settled(api, media_id)  # its downloads and storyboard are made after it is ready
        before = snapshot(api, job_id, media_id)
        # The cut-off attempt goes on when its link returns; it has ended when its temp dir is gone.
        wait_for(
            lambda: not cut.job_dirs(),
            timeout_s=90,
            message=f"the late attempt on {cut.host.name} to end; its log:\n{cut.proc and cut.proc.log()}",
        )
        time.sleep(1.0)  # a write it made as it ended would be in the database by now
        after = snapshot(api, job_id, media_id)
        changed = [
            f"{what}.{key}: {old[key]!r} -> {new[key]!r}"
            for what, old, new in (("job", before[0], after[0]), ("media", before[1], after[1]))
            for key in old
            if old[key] != new[key]
        ]
        assert not changed, f"the late attempt changed the job or the asset: {changed}"
        job, media = after[0], get_media(api, media_id)
        assert job["state"] == "succeeded" and job["attempt"] == 2, job
        assert worker_host(cluster, job_id) != cut.host.name
        assert_only_final_files(cluster, media)
        check_plays(api, media)
