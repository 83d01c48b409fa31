from __future__ import annotations

from pathlib import Path

import pytest

from mediajobs.config import Settings, mask_url


def test_defaults_live_in_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "MEDIAJOBS_DATABASE_URL",
        "MEDIAJOBS_STORAGE_URL",
        "MEDIAJOBS_BROKER_URL",
        "MEDIAJOBS_DATA_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    data = tmp_path / "mediajobs-data"
    assert settings.data_dir == data
    assert settings.effective_database_url == f"sqlite:///{data / 'mediajobs.db'}"
    assert settings.effective_storage_url == f"file://{data / 'storage'}"
    assert settings.managed_broker
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.max_upload_bytes == 10 * 1024**3
    assert settings.import_allow_private is False


def test_environment_and_dotenv_configure_every_part(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("MEDIAJOBS_PORT=9123\nMEDIAJOBS_API_KEYS=a, b\n")
    monkeypatch.setenv("MEDIAJOBS_BROKER_URL", "redis://broker:6379/0")
    settings = Settings()
    assert settings.port == 9123
    assert settings.api_key_set == frozenset({"a", "b"})
    assert not settings.managed_broker


def test_masked_configuration_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAJOBS_DATABASE_URL", "postgresql://app:hunter2@db:5432/media")
    monkeypatch.setenv("MEDIAJOBS_API_KEYS", "topsecret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "awssecret")
    shown = " ".join(Settings().masked().values())
    assert "hunter2" not in shown and "topsecret" not in shown and "awssecret" not in shown
    # The user goes with the password: with it, an attacker needs only one guess.
    assert "postgresql://****:****@db:5432/media" in shown
    assert mask_url("redis://localhost:6379/0") == "redis://localhost:6379/0"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://KEY:SECRET@host/x", "https://****:****@host/x"),
        ("redis://:pw@[::1]:6379/0", "redis://****:****@[::1]:6379/0"),
        ("redis://user@host:6379/0", "redis://user@host:6379/0"),
        ("sqlite:///db?password=pw&mode=ro", "sqlite:///db?password=****&mode=ro"),
        (
            "https://b.s3.example/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=ff&X-Amz-Security-Token=t&v=1",
            "https://b.s3.example/k?X-Amz-Credential=****&X-Amz-Signature=****&X-Amz-Security-Token=****&v=1",
        ),
        (
            "http://h/?api%5Fkey=z&Secret=s&client_pwd=p&flag",
            "http://h/?api%5Fkey=****&Secret=****&client_pwd=****&flag",
        ),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("http://[not-closed", "****"),
    ],
)
def test_mask_url_hides_userinfo_and_secret_query_values(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_masked_configuration_masks_every_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAJOBS_BROKER_URL", "redis://u:brokerpw@b:6379/0")
    monkeypatch.setenv("MEDIAJOBS_STORAGE_URL", "s3://bucket/p?secret=storagesecret")
    monkeypatch.setenv("MEDIAJOBS_S3_ENDPOINT_URL", "https://AKID:S3SECRET@minio:9000")
    monkeypatch.setenv("MEDIAJOBS_DATABASE_URL", "postgresql://app@db/media?password=querypw")
    shown = " ".join(Settings().masked().values())
    for secret in ("brokerpw", "storagesecret", "AKID", "S3SECRET", "querypw"):
        assert secret not in shown, secret
