"""Bare-metal provider against a real OpenSSH server on loopback.

A plain process stands in for the container engine: a small fake ``docker`` (and ``nvidia-smi``) placed on the
PATH of the SSH session (sshd ``SetEnv``) records runs and labels in a JSON file and answers ps/inspect/rm from it.
No container runs. Needs Debian's openssh-server (apt-get install -y openssh-server).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.errors import AuthError, CapacityError, NotFoundError
from providers.base import Placement, Provider
from providers.baremetal import canonical_from_smi, create, parse_nvidia_smi
from test_containers_vllm import build

SSHD = "/usr/sbin/sshd"
TOKEN = "hf_baremetal_SECRET_7"

FAKE_DOCKER = r'''#!PYTHON
import json, os, sys, time, uuid
STATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docker-state.json")
def load():
    return json.load(open(STATE)) if os.path.exists(STATE) else {"containers": []}
def save(s):
    json.dump(s, open(STATE, "w"), indent=1)
s = load(); cmd, args = sys.argv[1], sys.argv[2:]
def find(ref):
    return next((c for c in s["containers"] if c["Id"].startswith(ref) or c["Name"] == "/" + ref), None)
if cmd == "run":
    rec = {"Id": uuid.uuid4().hex + uuid.uuid4().hex, "Config": {"Labels": {}, "Env": []}, "argv": args, "env_from_caller": {},
           "State": {"Status": "running", "Running": True, "StartedAt": time.strftime("%Y-%m-%dT%H:%M:%S.123456789Z", time.gmtime())}}
    i = 0
    with_value = {"--name", "--restart", "--gpus", "-p", "-e", "-v", "--mount", "--label", "--entrypoint"}
    while i < len(args) and args[i].startswith("-"):
        a = args[i]
        v = args[i + 1] if a in with_value else None
        if a == "--name": rec["Name"] = "/" + v
        elif a == "--label": k, _, val = v.partition("="); rec["Config"]["Labels"][k] = val
        elif a == "--gpus": rec["gpus"] = v
        elif a == "-e" and "=" not in v: rec["env_from_caller"][v] = os.environ.get(v)
        i += 2 if v is not None else 1
    rec["Config"]["Image"] = args[i]
    if find(rec["Name"][1:]):
        sys.exit(f'docker: Error response from daemon: Conflict. The container name "{rec["Name"]}" is already in use.')
    s["containers"].append(rec); save(s); print(rec["Id"])
elif cmd == "ps":
    filters = [args[i + 1][len("label="):] for i, a in enumerate(args) if a == "--filter"]
    for c in s["containers"]:
        labels = c["Config"]["Labels"]
        if all((f.split("=", 1)[0] in labels) if "=" not in f else labels.get(f.split("=", 1)[0]) == f.split("=", 1)[1] for f in filters):
            print(c["Id"][:12])
elif cmd == "inspect":
    found = [find(r) for r in args]
    print(json.dumps([c for c in found if c], indent=1))
    missing = [r for r, c in zip(args, found) if not c]
    if missing:
        sys.exit("Error: No such object: " + missing[0])
elif cmd == "rm":
    names = [a for a in args if not a.startswith("-")]
    for n in names:
        c = find(n)
        if not c:
            sys.exit("Error response from daemon: No such container: " + n)
        s["containers"].remove(c)
    save(s)
else:
    sys.exit("fake docker: unsupported command " + cmd)
'''

FAKE_SMI = r'''#!/bin/sh
[ -f "$(dirname "$0")/../no-gpus" ] && { echo "NVIDIA-SMI has failed" >&2; exit 9; }
printf '0, NVIDIA H100 80GB HBM3, 81559 MiB\n1, NVIDIA H100 80GB HBM3, 81559 MiB\n'
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        reason = f"{SSHD} not installed (apt-get install -y openssh-server)"
        print(f"SKIP baremetal: {reason}")
        pytest.skip(reason)
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    fakebin = d / "fakebin"
    fakebin.mkdir()
    (fakebin / "docker").write_text(FAKE_DOCKER.replace("#!PYTHON", "#!" + sys.executable))
    (fakebin / "nvidia-smi").write_text(FAKE_SMI)
    for f in fakebin.iterdir():
        f.chmod(0o755)
    port = _free_port()
    user = getpass.getuser()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
        f"KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        f"AllowUsers {user}\nSetEnv PATH={fakebin}:/usr/local/bin:/usr/bin:/bin\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on
    proc = subprocess.Popen([SSHD, "-D", "-e", "-p", str(port), "-f", str(d / "sshd_config"), "-h", str(d / "host_key")],
                            stderr=open(d / "sshd.log", "w"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"sshd exited: {(d / 'sshd.log').read_text()}")
            time.sleep(0.1)
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    yield {"dir": d, "port": port, "host": f"{user}@127.0.0.1:{port}"}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def clean_state(sshd):  # type: ignore[no-untyped-def]
    for f in ("docker-state.json", "no-gpus"):
        (sshd["dir"] / f).unlink(missing_ok=True)
    return sshd


def placement(replica: str) -> Placement:
    return Placement(project="acme", deployment="chat", plan_id="p1", replica=replica, region="onprem:dc-frankfurt",
                     instance_type="h100-node", gpu="H100", gpu_count=1, market="onprem")


def state(sshd) -> list[dict]:  # type: ignore[no-untyped-def]
    return json.loads((sshd["dir"] / "docker-state.json").read_text())["containers"]


def test_launch_list_describe_terminate(clean_state, httpserver, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    sshd = clean_state
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    httpserver.expect_request("/health").respond_with_data("")
    p = create(hosts=[sshd["host"]], key_filename=str(sshd["dir"] / "user_key"), known_hosts=str(sshd["dir"] / "known_hosts"),
               region="onprem:dc-frankfurt", base_port=httpserver.port)
    assert isinstance(p, Provider)
    a = build()
    h1 = p.launch(a, placement("chat-0"))
    assert h1.id == f"{sshd['host']}/{a.name}" and h1.endpoint == f"http://127.0.0.1:{httpserver.port}"
    assert h1.state == "running"  # container running and /health answers
    [rec] = state(sshd)
    assert rec["gpus"] == '"device=0"' and rec["Config"]["Labels"]["orch-plan"] == "p1"
    assert rec["env_from_caller"] == {"HF_TOKEN": TOKEN}  # reached the engine through the SSH channel's stdin...
    assert not any(TOKEN in arg for arg in rec["argv"])  # ...never through a command line

    b = build(extra_args=["--enforce-eager"])
    b.name = "acme-chat-1"
    h2 = p.launch(b, placement("chat-1"))
    assert h2.details["gpu_devices"] == "1" and h2.endpoint.endswith(f":{httpserver.port + 1}")
    assert h2.state == "pending"  # nothing answers /health on that port

    c = build()
    c.name = "acme-chat-2"
    with pytest.raises(CapacityError, match="no host has 1 free H100"):
        p.launch(c, placement("chat-2"))

    assert p.launch(a, placement("chat-0")).id == h1.id  # relaunch adopts the running container
    assert len(state(sshd)) == 2
    assert sorted(h.id for h in p.list({"orch-project": "acme"})) == sorted([h1.id, h2.id])
    assert [h.id for h in p.list({"orch-replica": "chat-1"})] == [h2.id]
    assert p.describe(h2.id).details["container_state"] == "running"

    p.terminate(h1)
    p.terminate(h1)  # idempotent
    with pytest.raises(NotFoundError):
        p.describe(h1.id)
    assert [h.id for h in p.list({"orch-project": "acme"})] == [h2.id]
    h3 = p.launch(c, placement("chat-2"))  # GPU 0 is free again
    assert h3.details["gpu_devices"] == "0"
    p.close()


def test_declared_inventory_without_nvidia_smi(clean_state) -> None:  # type: ignore[no-untyped-def]
    sshd = clean_state
    (sshd["dir"] / "no-gpus").write_text("")
    kw = {"key_filename": str(sshd["dir"] / "user_key"), "known_hosts": str(sshd["dir"] / "known_hosts")}
    p = create(hosts=[sshd["host"]], gpus_per_host={sshd["host"]: {"H100-SXM": 4}}, **kw)
    s = build(tp=4, gpus=4)
    h = p.launch(s, placement("chat-0"))
    assert h.details["gpu_devices"] == "0-1-2-3"
    other = build()
    other.name = "acme-chat-1"
    nothing = create(hosts=[sshd["host"]], **kw)  # neither nvidia-smi nor a declared inventory: no GPUs known
    with pytest.raises(CapacityError):
        nothing.launch(other, placement("chat-1"))


def test_unknown_host_key_is_refused(clean_state, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sshd = clean_state
    (tmp_path / "known_hosts").write_text("")
    p = create(hosts=[sshd["host"]], key_filename=str(sshd["dir"] / "user_key"), known_hosts=str(tmp_path / "known_hosts"))
    p._sleep = lambda s: None
    with pytest.raises(AuthError, match="unknown host key"):
        p.describe(f"{sshd['host']}/x")


def test_nvidia_smi_parsing() -> None:
    slots = parse_nvidia_smi("0, NVIDIA H100 80GB HBM3, 81559 MiB\n1, Tesla T4, 15360 MiB\n2, NVIDIA A100-SXM4-80GB, 81920 MiB\n")
    assert [(s.index, s.name, s.memory_mib) for s in slots] == [(0, "H100", 81559), (1, "T4", 15360), (2, "A100-80GB", 81920)]
    assert canonical_from_smi("NVIDIA L4") == "L4" and canonical_from_smi("NVIDIA GeForce RTX 4090") is None
