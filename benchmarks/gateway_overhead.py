"""What the gateway costs: the latency it adds to a request, and the autoscaler's decision round at 200 replicas.

1. Latency. The same completion request, alternately straight to a replica and through the gateway (Caddy edge
   -> vllm-router -> the replica), N times each, one at a time; p50 / p99 of each and of the difference. The
   replica is a stand-in answering like vLLM in ~5 ms (tests/test_gateway_local.py's WORKER), so the gateway's
   hops are not lost in model time; ``--vllm`` uses a real vLLM CPU replica of the tiny model instead.
2. Decision round. 200 replicas' /metrics (real vLLM 0.32 text, tests/fixtures/metrics) scraped at once the way
   the loop does, turned into an observation and a decision: the time of one round without providers.

    .venv/bin/python benchmarks/gateway_overhead.py [--requests 400] [--replicas 200] [--vllm]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

KEY, ADMIN = "bench-user-key", "bench-admin-key"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def start_worker(tmp: Path, vllm: bool) -> tuple[subprocess.Popen, str]:
    from test_gateway_local import WORKER, _free_block, _wait

    port = _free_block(1)
    if vllm:
        python = os.environ.get("ORCH_VLLM_PYTHON") or sys.exit("--vllm needs ORCH_VLLM_PYTHON")
        argv = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(REPO / "examples" / "tiny-llama"),
                "--load-format", "dummy", "--served-model-name", "tiny", "--max-model-len", "256", "--port", str(port)]
        env = {**os.environ, "VLLM_API_KEY": KEY, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    else:
        (tmp / "worker.py").write_text(WORKER.replace("time.sleep(0.05)", "time.sleep(0.005)"))
        argv, env = [sys.executable, str(tmp / "worker.py"), str(port)], {**os.environ, "VLLM_API_KEY": KEY}
    proc = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(f"http://127.0.0.1:{port}/health", 300)
    return proc, f"http://127.0.0.1:{port}"


def latency(n: int, vllm: bool) -> None:
    import httpx

    from containers.gateway import GatewayNetwork, build_gateway_container
    from orchestrator.serve.admin import GatewayAdmin
    from providers.base import Placement
    from providers.local import create
    from test_gateway_local import _free_block, _wait

    os.environ.update(ORCH_API_KEY=KEY, ORCH_ADMIN_KEY=ADMIN)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        worker, direct = start_worker(tmp, vllm)
        port = _free_block(4)
        spec = build_gateway_container(project="b", deployment="chat", gateway="b-chat-gw-0", port=port,
                                       network=GatewayNetwork(bind="127.0.0.1", control_bind="127.0.0.1"), policy="round_robin")
        provider = create(state_dir=tmp / "local")
        handle = provider.launch(spec, Placement("b", "chat", "p", "b-chat-gw-0", "local:this-machine",
                                                 "this-machine", "CPU", 0))
        try:
            gateway = f"http://127.0.0.1:{port}"
            _wait(f"{gateway}/health", 60)
            with GatewayAdmin(gateway, ADMIN) as admin:
                admin.add(direct)
            body = {"model": "tiny", "prompt": "Hello", "max_tokens": 8}
            times: dict[str, list[float]] = {"direct": [], "gateway": []}
            with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as c:
                for url in (direct, gateway) * 20:  # warm both paths
                    c.post(f"{url}/v1/completions", json=body).raise_for_status()
                for i in range(2 * n):  # alternate, so drifts of this shared machine hit both alike
                    which = ("direct", "gateway")[i % 2]
                    url = direct if which == "direct" else gateway
                    t0 = time.perf_counter()
                    c.post(f"{url}/v1/completions", json=body).raise_for_status()
                    times[which].append((time.perf_counter() - t0) * 1000)
            added = [g - d for d, g in zip(times["direct"], times["gateway"])]
            print(f"latency, {n} requests each way, one at a time ({'vLLM tiny-llama' if vllm else 'stand-in replica'}):")
            for name, v in (*times.items(), ("added (pairwise)", added)):
                print(f"  {name:17s} p50 {statistics.median(v):7.2f} ms   p99 {pct(v, 0.99):7.2f} ms")
        finally:
            provider.terminate(handle)
            os.killpg(worker.pid, signal.SIGKILL)


def decision_round(replicas: int) -> None:
    import http.server
    import threading

    from orchestrator.metering.meter import scrape_all
    from orchestrator.metering.store import Replica
    from orchestrator.perf.capacity import Capacity
    from orchestrator.serve.autoscale import observe
    from orchestrator.serve.decide import Rules, decide

    text = (REPO / "tests" / "fixtures" / "metrics" / "vllm-0.32-cpu-after-5-requests.txt").read_bytes()

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *a: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 1024  # 200 replicas are 200 servers: one stand-in must not turn them away

    server = Server(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    fleet = [Replica(id=f"r{i}", project="b", deployment="chat", team=None, model="m", provider="local",
                     region="local:this-machine", instance_type="x", gpu="CPU", gpu_count=1, market="on_demand",
                     usd_per_hour=0.0, list_usd_per_hour=0.0, plan_id="p", endpoint=endpoint, status="running",
                     start=0.0, end=None, quantization="bf16", details={}) for i in range(replicas)]
    cap, rules = Capacity(600.0, 4.0, "measured"), Rules(1, replicas * 2, 0.7)
    rounds, decisions, previous, history = [], [], {}, []
    for k in range(6):
        t0 = time.perf_counter()
        samples = asyncio.run(scrape_all(fleet))
        t1 = time.perf_counter()
        obs = observe(samples, previous, time.time())
        previous = {s.replica_id: s for s in samples if s.ok}
        if obs is not None:
            history.append(obs)
        decide(history, cap, rules, replicas, time.time())
        rounds.append((time.perf_counter() - t0) * 1000)
        decisions.append((time.perf_counter() - t1) * 1000)
        bad = [s.error for s in samples if not s.ok]
        assert not bad, bad[:3]
    server.shutdown()
    print(f"decision round, {replicas} replicas' /metrics scraped, observed and decided (6 rounds): "
          f"median {statistics.median(rounds[1:]):.0f} ms, max {max(rounds[1:]):.0f} ms (first, cold: {rounds[0]:.0f} ms);"
          f" of which observe + decide: median {statistics.median(decisions[1:]):.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--replicas", type=int, default=200)
    ap.add_argument("--vllm", action="store_true", help="a real vLLM CPU replica (ORCH_VLLM_PYTHON) behind the gateway")
    args = ap.parse_args()
    latency(args.requests, args.vllm)
    decision_round(args.replicas)


if __name__ == "__main__":
    main()
