"""Config validation: every error names the key and the file; the example loads."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from daemon import config
from daemon.config import ConfigError
from daemon.config import settings as config_settings

REPO = Path(__file__).resolve().parents[2]
GOOD = """
[capture.movement]
activity = "golf"
movement = "full_swing"
[[watch]]
path = "{watch}"
[athletes]
"jane" = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "w").mkdir(exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(text.replace("{watch}", str(tmp_path / "w")))
    return path


def test_example_config_loads_and_documents_every_key(tmp_path: Path) -> None:
    text = (REPO / "config.example.toml").read_text()
    watch = tmp_path / "captures"
    watch.mkdir()
    path = tmp_path / "config.toml"
    path.write_text(text.replace("/srv/captures", str(watch)))
    cfg = config.load(str(path))
    assert cfg.watches[0].path == watch
    assert cfg.upload.concurrency == 2 and cfg.upload.settle_seconds == 2.0
    assert cfg.athletes == {"jane-doe": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}
    assert cfg.api.base_url == "https://api.uplift.ai/v1"
    # Every setting of every section appears in the example (commented or not).
    for section in (config.ApiSettings, config.UploadSettings, config.WebSettings,
                    config.NotifySettings, config.NodeSettings,
                    config_settings.RetentionSettings):
        for f in dataclasses.fields(section):
            assert f"{f.name} =" in text, f"{f.name} is not documented"
    for key in ("camera_setup_selection", "camera_orientation", "data_dir", "upload_window",
                "level", "token_file", "[capture.camera]", "path ="):
        assert key in text
    tomllib.loads(text)


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('path = "{watch}"', 'path = "w"') +
                 '[database]\nurl = "sqlite:///state/jobs.db"\n')
    cfg = config.load(str(path))
    assert cfg.watches[0].path == tmp_path / "w"
    assert cfg.database_url == f"sqlite:///{tmp_path}/state/jobs.db"


@pytest.mark.parametrize(("patch", "words"), [
    ("[upload]\nconcurency = 3\n", ["[upload] concurency", "unknown key", "concurrency"]),
    ("[upload]\nconcurrency = \"two\"\n", ["[upload] concurrency", "whole number"]),
    ("[upload]\nconcurrency = 0\n", ["[upload] concurrency", "at least 1"]),
    ("[upload]\nsettle_seconds = true\n", ["[upload] settle_seconds", "number"]),
    ("[api]\nbase_url = \"http://api.example.com/v1\"\n", ["[api] base_url", "https"]),
    ("[capture]\ncamera_orientation = \"sideways\"\n", ["camera_orientation", "auto"]),
    ("colour = 1\n", ["colour", "unknown key"]),
    ("[web]\ntrusted_proxies = [\"10.0.0.5\", \"proxy.lab\"]\n",
     ["[web] trusted_proxies", "entry 2", "proxy.lab", "IP address or network"]),
])
def test_bad_values_name_the_key_and_the_file(tmp_path: Path, patch: str,
                                              words: list[str]) -> None:
    path = write(tmp_path, patch + GOOD)
    with pytest.raises(ConfigError) as exc:
        config.load(str(path))
    message = str(exc.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_missing_watch_folder_waits_and_check_names_it(tmp_path: Path, capsys) -> None:
    # Not a config error: an unmounted share must not make the service fail to start.
    path = write(tmp_path, GOOD.replace("{watch}", str(tmp_path / "nope")))
    cfg = config.load(str(path))
    from daemon.commands import check as checkcmd

    assert checkcmd.run(cfg, offline=True) == 1
    assert "FAIL watch folder " + str(tmp_path / "nope") + " does not exist" in \
        capsys.readouterr().out
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"\[watch #1\] path: .*file.* is not a folder"):
        config.load(str(write(tmp_path, GOOD.replace("{watch}", str(tmp_path / "file")))))


def test_bad_athlete_uuid_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + '"bob" = "not-a-uuid"\n')
    with pytest.raises(ConfigError, match=r'\[athletes\] "bob": \'not-a-uuid\' is not a UUID'):
        config.load(str(path))


def test_watch_entries_override_capture_defaults(tmp_path: Path) -> None:
    (tmp_path / "w2").mkdir()
    text = GOOD + f'[[watch]]\npath = "{tmp_path / "w2"}"\n' \
        'camera_setup_selection = "single.down_the_line"\n[watch.movement]\nmovement = "putt"\n'
    cfg = config.load(str(write(tmp_path, text)))
    first, second = cfg.watches
    assert first.capture.camera_setup_selection == "single.front_on"
    assert second.capture.camera_setup_selection == "single.down_the_line"
    assert dict(second.capture.movement) == {"activity": "golf", "movement": "putt"}


@pytest.mark.parametrize("second", ["{watch}", "{watch}/jane", "{watch}/../w/", "/"])
def test_a_watch_folder_inside_another_or_the_root_is_refused(tmp_path: Path,
                                                               second: str) -> None:
    """Issue 30: files found twice (two jobs, perhaps two athletes), or the whole machine."""
    text = GOOD + f'[[watch]]\npath = "{second}"\n'
    where = "watch #2"
    if second == "/":  # alone: not refused for holding the other
        text, where = GOOD.replace('path = "{watch}"', 'path = "/"'), "watch #1"
    with pytest.raises(ConfigError, match=rf"\[{where}\] path: .*(inside|whole file system)"):
        config.load(str(write(tmp_path, text)))
    with pytest.raises(ConfigError, match=r"inside"):  # the outer one second
        config.load(str(write(tmp_path, GOOD.replace('path = "{watch}"', 'path = "{watch}/a"')
                              + '[[watch]]\npath = "{watch}"\n')))


def test_the_all_zero_uuid_is_no_athlete(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + '"bob" = "00000000-0000-0000-0000-000000000000"\n')
    with pytest.raises(ConfigError, match=r'\[athletes\] "bob": the all-zero UUID'):
        config.load(str(path))


def test_loopback_http_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, '[api]\nbase_url = "http://127.0.0.1:8765/v1/"\n' + GOOD)
    assert config.load(str(path)).api.base_url == "http://127.0.0.1:8765/v1"


def test_token_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "uplift-api-token").write_text("from-credential")
    cfg = config.load(str(write(tmp_path, GOOD)))
    monkeypatch.delenv("UPLIFT_API_TOKEN", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert config.read_token(cfg) == "from-credential"
    with_file = dataclasses.replace(cfg, api=dataclasses.replace(cfg.api, token_file=token_file))
    assert config.read_token(with_file) == "from-file"
    monkeypatch.setenv("UPLIFT_API_TOKEN", "from-env")
    assert config.read_token(with_file) == "from-env"
    monkeypatch.delenv("UPLIFT_API_TOKEN")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError, match="no API token"):
        config.read_token(cfg)


@pytest.mark.parametrize("section,key,value", [
    ("analysis", "max_rate", "inf"), ("analysis", "max_rate", "nan"),
    ("upload", "settle_seconds", "inf"), ("upload", "shutdown_timeout", "-inf"),
    ("upload", "poll_seconds", "nan")])
def test_a_number_that_is_not_finite_is_refused_naming_the_key(
        tmp_path: Path, section: str, key: str, value: str) -> None:
    """TOML writes nan and inf as numbers: no rate, wait or timeout is either (an infinite
    max_rate made the follower claim without bound; nan passes every comparison)."""
    path = write(tmp_path, GOOD + f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as err:
        config.load(str(path))
    assert f"[{section}] {key}" in str(err.value) and str(path) in str(err.value)
    assert "finite" in str(err.value)


@pytest.mark.parametrize("section,key", [
    ("api", "read_timeout"), ("api", "connect_timeout"), ("upload", "stall_seconds"),
    ("upload", "poll_seconds"), ("notify", "batch_seconds"), ("analysis", "max_rate")])
def test_a_number_too_large_for_any_wait_is_refused_naming_the_key(
        tmp_path: Path, section: str, key: str) -> None:
    """1e10 s (317 years) loaded, then every socket and sleep that got it raised OverflowError
    (`timestamp out of range for platform time_t`): with `[api] read_timeout = 1e10` every
    request to Uplift failed with it. Refused here, naming the key and the file."""
    path = write(tmp_path, GOOD + f"[{section}]\n{key} = 1e10\n")
    with pytest.raises(ConfigError) as err:
        config.load(str(path))
    assert f"[{section}] {key}" in str(err.value) and str(path) in str(err.value)
    assert "at most" in str(err.value)
