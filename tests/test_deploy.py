"""The deployment files fit together: compose services, the image, the volume, the secrets."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def env_of(dockerfile: str) -> dict[str, str]:
    joined = dockerfile.replace("\\\n", " ")
    return dict(
        re.findall(
            r"\b([A-Z_]+)=(\S+)",
            "\n".join(line for line in joined.splitlines() if line.startswith("ENV ")),
        )
    )


def test_bot_service_builds_the_image_and_restarts(compose):
    bot = compose["services"]["bot"]
    assert bot["build"] == "."
    assert bot["restart"] in {"unless-stopped", "always"}
    assert bot["env_file"] == ".env"
    assert "profiles" not in bot  # starts with a plain `docker compose up`


def test_index_lives_in_a_named_volume_shared_with_the_rebuild(compose, dockerfile):
    volumes = compose["volumes"]
    index_dir = env_of(dockerfile)["QABOT_INDEX_DIR"]
    for name in ("bot", "reindex"):
        mounts = [m.split(":") for m in compose["services"][name]["volumes"]]
        assert any(
            source in volumes and index_dir.startswith(target) for source, target, *_ in mounts
        ), name


def test_one_off_reindex_service_under_a_profile(compose):
    reindex = compose["services"]["reindex"]
    assert reindex["profiles"] == ["reindex"]
    assert reindex["command"][:3] == ["qabot", "index", "build"]
    assert reindex["image"] == compose["services"]["bot"]["image"]
    assert reindex["restart"] == "no"


def test_image_installs_the_package_and_prepares_the_model(dockerfile):
    assert re.search(r"^FROM python:3\.11\.\d+-slim-\w+$", dockerfile, re.M)
    pin = re.search(r'"(torch==[^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert f"pip install {pin} --index-url https://download.pytorch.org/whl/cpu" in dockerfile
    assert "pip install ." in dockerfile and "qabot model prepare" in dockerfile
    assert "qabot run" in dockerfile and "USER qabot" in dockerfile


def test_secrets_stay_out_of_git_and_the_image():
    example = (REPO / ".env.example").read_text()
    assert re.search(r"^TELEGRAM_BOT_TOKEN=", example, re.M)
    assert re.search(r"^QABOT_ADMIN_IDS=", example, re.M)
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert ".env" in (REPO / ".dockerignore").read_text().split()


def test_compose_config_is_valid_where_docker_compose_exists(tmp_path):
    command = next(
        (
            c
            for c in (["docker", "compose"], ["docker-compose"])
            if shutil.which(c[0])
            and subprocess.run([*c, "version"], capture_output=True).returncode == 0
        ),
        None,
    )
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    shutil.copy(REPO / "docker-compose.yml", tmp_path)
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=1:x\n")  # env_file must exist
    result = subprocess.run(
        [*command, "--profile", "reindex", "config", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_make_setup_can_take_torch_from_a_cpu_only_index(tmp_path):
    """Users off our machines need the CPU build of torch: TORCH_INDEX selects its index."""
    venv = f"VENV={tmp_path / 'venv'}"
    plain = subprocess.run(["make", "-n", "setup", venv], capture_output=True, text=True, cwd=REPO)
    cpu = subprocess.run(["make", "-n", "setup", venv, "TORCH_INDEX=https://example.org/cpu"],
                         capture_output=True, text=True, cwd=REPO)
    torch_line = lambda out: next(line for line in out.splitlines() if "torch==" in line)
    assert "--index-url" not in torch_line(plain.stdout)
    assert torch_line(cpu.stdout).endswith("torch==2.13.0 --index-url https://example.org/cpu")


@pytest.mark.parametrize("name", ["bot", "reindex"])
def test_services_run_locked_down(compose, name):
    service = compose["services"][name]
    assert service["read_only"] is True and "/tmp" in service["tmpfs"]
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["mem_limit"]


def test_the_base_image_is_a_fixed_release(dockerfile):
    base = re.search(r"^FROM (\S+)", dockerfile, re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    assert re.search(r"HOME=/tmp", dockerfile)  # a writable HOME under the read-only root
