"""Settings as data: documented in one place, resolved in one order; the CLI explains itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import config
from appliance.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_every_setting_is_documented_in_the_readme():
    text = README.read_text()
    block = re.search(r"<!-- settings-table.*?-->\n(.*?)\n<!-- /settings-table -->", text, re.S)
    assert block, "README.md lost its settings table"
    assert block.group(1).strip() == config.markdown_table().strip()


def test_precedence_default_file_env_flag(tmp_path):
    toml = tmp_path / "lightbox.toml"
    toml.write_text('aet = "FROM_FILE"\ndicom_port = 2000\nhttp_port = 3000\nstable_age = 5\n')
    env = {"LIGHTBOX_DICOM_PORT": "2001", "LIGHTBOX_HTTP_PORT": "3001"}
    settings = config.load({"http_port": "3002"}, toml, env)
    assert settings.aet == "FROM_FILE"  # file beats default
    assert settings.dicom_port == 2001  # environment beats file
    assert settings.http_port == 3002  # flag beats environment
    assert settings.stable_age == 5
    assert settings.max_associations == config.BY_NAME["max_associations"].default


def test_config_file_from_environment(tmp_path):
    toml = tmp_path / "lightbox.toml"
    toml.write_text('aet = "ENVFILE"\n')
    assert config.load({}, None, {"LIGHTBOX_CONFIG": str(toml)}).aet == "ENVFILE"


@pytest.mark.parametrize(
    "content, message",
    [
        ('dicom_port = "many"\n', "dicom_port"),
        ("no_such_setting = 1\n", "unknown setting"),
        ('duplicate_policy = "merge"\n', "keep-first"),
        ("aet = \n", "cannot read"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, content, message):
    toml = tmp_path / "bad.toml"
    toml.write_text(content)
    result = run("verify", "--config", str(toml), "--data", str(tmp_path / "d"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_help_for_every_subcommand():
    top = run("--help")
    assert top.returncode == 0
    subcommands = ["serve", "import", "verify", "rebuild-index"]
    for name in subcommands:
        assert name in top.stdout
        sub = run(name, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "--data" in sub.stdout and "--config" in sub.stdout
    serve_help = run("serve", "--help").stdout
    for setting in config.SETTINGS:
        assert setting.flag in serve_help, setting.flag


def test_parser_knows_every_setting_flag():
    args = build_parser().parse_args(["serve", "--aet", "X", "--dicom-port", "1"])
    assert args.aet == "X" and args.dicom_port == "1"


def test_console_script_and_module_agree():
    script = Path(sys.executable).parent / "lightbox"  # installed beside this Python: no PATH needed
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == run("--version").stdout.strip()


def test_serve_stops_cleanly_on_sigterm(lightbox):
    assert lightbox.stop() == 0
    assert "stopped" in lightbox.log()


def test_healthz_reports_status_version_counts_and_disk(lightbox):
    health = lightbox.health()
    assert health["status"] == "ok"
    assert health["version"]
    assert set(health["counts"]) >= {"patients", "studies", "series", "instances"}
    assert health["free_disk_bytes"] > 0


def _commands_under(heading: str) -> list[str]:
    """The lines of the first shell block below README's ``heading``."""
    text = README.read_text()
    section = text[text.index(heading) :]
    block = re.search(r"```sh\n(.*?)\n```", section, re.S)
    assert block, f"README.md has no command under {heading!r}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command():
    [command] = _commands_under("## Run the tests")
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    assert command in ci, f".ci/run does not run README's test command: {command}"


def test_readme_run_command_makes_a_venv_first():
    """Debian 12 and Ubuntu 24.04 refuse pip installs into the system Python."""
    [command] = _commands_under("## Run it")
    steps = [step.strip() for step in command.split("&&")]
    assert "apt-get install -y python3-venv ffmpeg" in steps and "python3 -m venv .venv" in steps
    assert steps.index("python3 -m venv .venv") < steps.index(".venv/bin/pip install .")
    assert steps[-1] == ".venv/bin/lightbox serve"


def test_readme_map_matches_the_tree():
    """README's "How it is built" names every package of appliance/ and of the archive, and
    nothing that is not there."""
    text = README.read_text()
    block = re.search(r"## How it is built.*?```\n(.*?)```", text, re.S)
    assert block, "README.md lost its map"
    named = set(re.findall(r"^ {2,4}([a-z0-9_]+)/", block.group(1), re.M))
    root = README.parent / "appliance"
    packages = {p.parent.name for p in root.glob("*/__init__.py")} | {
        p.parent.name for p in root.glob("archive/*/__init__.py")
    }
    packages -= {"webui"}  # a link to the top-level webui/, named on its own line
    assert named == packages
