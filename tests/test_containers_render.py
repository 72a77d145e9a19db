"""docker argv, VM startup script and local process renderers."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from containers.render.docker import HostOptions, docker_run_argv
from containers.render.local import VLLM_MODULE, local_process
from containers.render.vm import secret_fetch_lines, startup_script
from test_containers_vllm import SECRET, build, flag


@pytest.fixture(autouse=True)
def _token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)  # rendered output must never pick it up


def test_docker_argv() -> None:
    s = build(tp=2, gpus=2, market="spot")
    argv = docker_run_argv(s)
    assert argv[:3] == ["docker", "run", "-d"]
    assert flag(argv, "--name") == s.name
    assert flag(argv, "--gpus") == "all"
    assert "--shm-size=16g" in argv
    assert flag(argv, "-p") == "8000:8000"
    i = argv.index("HF_TOKEN")
    assert argv[i - 1] == "-e"  # no value: docker copies it from the caller's environment
    assert not any(SECRET in a for a in argv)
    assert "orch-project=acme" in argv and "orch-replica=chat-0" in argv
    img = argv.index(s.image)
    assert argv[img + 1 :] == s.args


def test_docker_argv_devices_and_podman() -> None:
    s = build(tp=2, gpus=2)
    argv = docker_run_argv(s, host=HostOptions(gpu_devices=[2, 3], host_port=8001))
    assert flag(argv, "--gpus") == '"device=2,3"'
    assert flag(argv, "-p") == "8001:8000"
    pod = docker_run_argv(s, "podman", HostOptions(gpu_devices=[0, 1]))
    assert pod[0] == "podman" and "--device=nvidia.com/gpu=0" in pod and "--device=nvidia.com/gpu=1" in pod
    assert "--gpus" not in pod


def test_startup_script_is_valid_bash_without_secrets() -> None:
    s = build(tp=4, gpus=4)
    for platform, vault in (("aws", None), ("gcp", None), ("azure", "kv-acme")):
        script = startup_script(s, fetch_secrets=secret_fetch_lines(s, platform, vault=vault))
        assert script.startswith("#!/bin/bash\n")
        assert SECRET not in script
        assert "hf-token" in script  # the secret's name, fetched at boot
        assert "docker run -d --name" in script and "nvidia-ctk" in script
        assert s.image in script and "--tensor-parallel-size 4" in script
        bash = shutil.which("bash")
        assert bash, "bash is needed for the syntax check"
        res = subprocess.run([bash, "-n"], input=script, text=True, capture_output=True)
        assert res.returncode == 0, res.stderr


def test_startup_script_quotes_args() -> None:
    s = build(extra_args=["--chat-template", "{{ x }}; rm -rf /"])
    script = startup_script(s)
    assert "'{{ x }}; rm -rf /'" in script


def test_local_process_cpu_drops_gpu_flags(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "config.json").write_text("{}")
    d_spec = build(hf_id=str(tmp_path / "config.json"), quant="fp8", kv="fp8", tp=1)
    d_spec.gpus = 0  # the CPU backend
    argv, env = local_process(d_spec, "/opt/py/bin/python", host="127.0.0.1", port=8123)
    assert argv[:3] == ["/opt/py/bin/python", "-m", VLLM_MODULE]
    assert flag(argv, "--model") == str(tmp_path)
    assert flag(argv, "--port") == "8123" and flag(argv, "--host") == "127.0.0.1"
    for gpu_only in ("--gpu-memory-utilization", "--tensor-parallel-size", "--kv-cache-dtype", "--quantization"):
        assert gpu_only not in argv
    assert flag(argv, "--max-model-len") == "8192" and flag(argv, "--load-format") == "dummy"
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert "HF_TOKEN" not in env and "HF_HOME" not in env


def test_local_process_gpu_keeps_flags() -> None:
    # a model with no published FP8 checkpoint, so fp8 is quantized in flight (llama-3.1-8b serves RedHatAI's now)
    s = build(tp=2, gpus=2, quant="fp8", model="gemma-2-9b", hf_id="google/gemma-2-9b-it")
    argv, env = local_process(s, "python3")
    assert flag(argv, "--tensor-parallel-size") == "2" and flag(argv, "--quantization") == "fp8"
    assert flag(argv, "--model") == "google/gemma-2-9b-it"
    assert "HF_HUB_OFFLINE" not in env and "VLLM_CPU_KVCACHE_SPACE" not in env


def test_startup_script_runs_and_passes_the_secret_through_the_env_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Run the script with stand-ins for docker, nvidia-smi, nvidia-ctk, systemctl and gcloud on PATH."""
    monkeypatch.delenv("HF_TOKEN")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    stubs = {
        "docker": f'echo "$@" >> {tmp_path}/docker.log; [ "$1" = run ] && echo "HF_TOKEN=${{HF_TOKEN:-}}" >> {tmp_path}/docker.env; exit 0',
        "nvidia-smi": "echo '0, NVIDIA L4, 23034 MiB'",
        "nvidia-ctk": "exit 0",
        "systemctl": "exit 0",
        "gcloud": f'echo "$@" >> {tmp_path}/gcloud.log; echo hf_from_secret_manager',
    }
    for name, body in stubs.items():
        (bin_ / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_ / name).chmod(0o755)
    s = build(tp=1, gpus=1)
    script = startup_script(s, fetch_secrets=secret_fetch_lines(s, "gcp"))
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "ORCH_LOG": str(tmp_path / "startup.log"), "ORCH_SECRETS": str(tmp_path / "etc" / "secrets.env")}
    res = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "secrets versions access latest --secret=hf-token" in (tmp_path / "gcloud.log").read_text()
    assert (tmp_path / "docker.env").read_text().strip() == "HF_TOKEN=hf_from_secret_manager"
    runs = [ln for ln in (tmp_path / "docker.log").read_text().splitlines() if ln.startswith("run ")]
    assert len(runs) == 1 and "hf_from_secret_manager" not in runs[0] and "-e HF_TOKEN " in runs[0]
    assert oct((tmp_path / "etc" / "secrets.env").stat().st_mode & 0o777) == "0o600"
