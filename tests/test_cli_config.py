"""Settings precedence (default < config file < environment < flag) and the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ups_server.cli import build_parser, settings_from
from ups_server.config import Settings


def _settings(argv: list[str], environ: dict[str, str]) -> Settings:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    return Settings.load(args.config, {k: v for k, v in overrides.items() if k in Settings.HELP}, environ=environ)


def test_precedence(tmp_path: Path):
    config = tmp_path / "ups.yaml"
    config.write_text("http-port: 9001\nae_title: FROM_FILE\nworklist_label: FILE_WL\nlog_level: DEBUG\n")
    env = {"UPS_HTTP_PORT": "9002", "UPS_AE_TITLE": "FROM_ENV"}
    s = _settings(["serve", "--config", str(config), "--http-port", "9003"], env)
    assert s.http_port == 9003  # flag > env > file
    assert s.ae_title == "FROM_ENV"  # env > file
    assert s.worklist_label == "FILE_WL"  # file > default
    assert s.log_level == "DEBUG"
    assert s.base_path == "/dicom-web"  # default


def test_config_file_from_environment(tmp_path: Path):
    config = tmp_path / "ups.yaml"
    config.write_text("dimse_port: 0\nallowed_aes: [A, B]\nae_table: {READER1: 'host:104'}\n")
    s = Settings.load(None, {}, environ={"UPS_CONFIG": str(config), "UPS_MIGRATE": "false"})
    assert s.dimse_port == 0 and s.allowed_aes == ["A", "B"] and s.ae_table == {"READER1": "host:104"}
    assert s.migrate is False


def test_env_lists_and_tables():
    s = Settings.load(None, {}, environ={"UPS_ALLOWED_AES": "A, B", "UPS_AE_TABLE": "X=h:1,Y=h:2"})
    assert s.allowed_aes == ["A", "B"] and s.ae_table == {"X": "h:1", "Y": "h:2"}


def test_settings_from_parsed_flags():
    args = build_parser().parse_args(["serve", "--dimse-port", "0", "--no-migrate", "--data-dir", "/tmp/x"])
    s = settings_from(args)
    assert s.dimse_port == 0 and s.migrate is False and s.data_dir == Path("/tmp/x")


@pytest.mark.parametrize(("content", "message"), [
    ("no_such_setting: 1\n", "unknown setting"),
    ("http_port: eighty\n", "http_port"),
    ("- a list\n", "mapping"),
])
def test_bad_config_file(tmp_path: Path, content: str, message: str):
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    with pytest.raises(ValueError, match=message):
        Settings.load(config, {}, environ={})


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ups_server", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_help():
    out = _run("--help")
    assert out.returncode == 0, out.stderr
    for word in ("serve", "migrate", "rules", "UPS_DATABASE_URL", "precedence"):
        assert word in out.stdout
    out = _run("serve", "--help")
    assert out.returncode == 0, out.stderr
    for flag in ("--http-port", "--dimse-port", "--data-dir", "--database-url", "--config", "--no-migrate"):
        assert flag in out.stdout


def test_bad_flag_value_is_a_usage_error(tmp_path: Path):
    out = _run("serve", "--http-port", "x", "--data-dir", str(tmp_path))
    assert out.returncode == 2
    assert "http_port" in out.stderr


@pytest.mark.parametrize("url", ["ftp://host/x", "s3://", "file://", "/just/a/path"])
def test_a_blob_store_url_of_another_form_is_a_usage_error(tmp_path: Path, url: str):
    out = _run("serve", "--blob-store", url, "--data-dir", str(tmp_path))
    assert out.returncode == 2
    assert "expected file://PATH or s3://BUCKET[/PREFIX]" in out.stderr


def test_blob_store_forms():
    from ups_server.ingest.blobs import parse_blob_url

    assert parse_blob_url("file:///var/lib/ups") == ("file", "/var/lib/ups", "")
    assert parse_blob_url("s3://reading/site-a/instances/") == ("s3", "reading", "site-a/instances")
    assert _settings(["serve"], {"UPS_BLOB_STORE": "s3://b"}).blob_store == "s3://b"
