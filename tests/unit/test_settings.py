import pytest

from core.config import Settings


def test_embedded_defaults_need_no_service(tmp_path):
    s = Settings(data_dir=tmp_path)
    assert s.sqlalchemy_url == f"sqlite:///{tmp_path / 'studio.sqlite3'}"
    assert s.uses_file_broker
    assert s.model_preset == "toy"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.com"])
def test_no_password_refuses_non_loopback_host(tmp_path, host):
    with pytest.raises(ValueError, match="without a password"):
        Settings(data_dir=tmp_path).check_bind_address(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_no_password_allows_loopback(tmp_path, host):
    Settings(data_dir=tmp_path).check_bind_address(host)


def test_password_allows_any_host(tmp_path):
    Settings(data_dir=tmp_path, password="s3cret-enough").check_bind_address("0.0.0.0")


def test_settings_read_avlora_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AVLORA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AVLORA_MAX_UPLOAD_MB", "7")
    monkeypatch.setenv("AVLORA_BROKER_URL", "redis://127.0.0.1:6379/3")
    s = Settings()
    assert s.max_upload_bytes == 7 * 1024 * 1024
    assert not s.uses_file_broker
