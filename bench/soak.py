"""Soak and concurrency benchmark of the LoGo Studio server: RSS curve over many requests, answers under load.

python -m bench.soak [--requests 200] [--every 20] [--warm-up 20] [--concurrency 16 32] [--server CMD ...]

1. Launch the server in a subprocess (default: `python app.py`, the embedded model with the zoo adapters) on a
   free port, and wait until its page answers.
2. Send `--requests` route + generate pairs through the page's own events (Gradio's queue protocol, as a browser
   does: table, figures and streamed answer; each pair in a fresh session unless `--sessions N`), reading the
   server's RSS (VmRSS in /proc/<pid>/status) every `--every` pairs.
3. Print the curve and the growth after warm-up (RSS at the last pair minus RSS after `--warm-up` pairs).
4. For each `--concurrency` level C: answer a set of requests one at a time over the raw /route and /generate
   endpoints (the solo answers), then send them from C threads at once; print mismatches (selection, weights
   or text) against the solo answers, failures, and p50/p95 latency.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from zoo.data import REPO_ROOT

PROMPTS = (
    "Translate to French: the cat is black",
    "What is the capital of Germany?",
    "Sort these words alphabetically: pear apple plum",
    "Is this review positive or negative? The film was dull and far too long.",
    "Count the words in: one two three four",
    "Answer the question: who wrote Hamlet?",
)
START_TIMEOUT_S = 900  # the embedded model dequantises and calibrates on a first start (minutes on 2 cores)
REQUEST_TIMEOUT_S = 600
ROUTE_BUTTON, GENERATE_BUTTON, MAX_NEW_LABEL = "Route only", "Generate", "Max new tokens"  # the page's own labels


@dataclass
class Api:
    """The server's web API: each endpoint's parameter defaults (from /gradio_api/info), called over plain HTTP."""

    url: str
    defaults: dict[str, list] = field(default_factory=dict)  # api name -> default value of every parameter

    @classmethod
    def of(cls, url: str) -> Api:
        info = httpx.get(f"{url}/gradio_api/info", timeout=30).json()["named_endpoints"]
        defaults = {
            name.lstrip("/"): {p["parameter_name"]: p.get("parameter_default") for p in endpoint["parameters"]}
            for name, endpoint in info.items()
        }
        return cls(url, defaults)

    def call(self, api: str, prompt: str, session: str | None = None, **changes) -> dict:
        """The endpoint's result for `prompt` (other parameters at their defaults, or as named in `changes`)."""
        params = dict(self.defaults[api])
        unknown = set(changes) - set(params)
        if unknown:
            raise ValueError(f"/{api} has no parameter(s) {sorted(unknown)}: it takes {sorted(params)}")
        params.update(changes, prompt=prompt)
        body = {"data": list(params.values()), "session_hash": session or uuid.uuid4().hex}
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
            posted = http.post(f"{self.url}/gradio_api/call/{api}", json=body)
            if posted.status_code != 200:
                raise RuntimeError(f"/{api} refused the request: HTTP {posted.status_code} {posted.text[:200]}")
            stream = http.get(f"{self.url}/gradio_api/call/{api}/{posted.json()['event_id']}").text
        return final_output(api, stream)[0]


@dataclass
class Page:
    """The Studio page's own events, driven over Gradio's queue protocol exactly as the browser drives them.

    Unlike the raw /route and /generate endpoints, these return the table, the three figures and the streamed
    answer: what a browser session costs the server.
    """

    url: str
    events: dict[str, tuple[int, int, list]]  # button label -> (fn_index, trigger id, [(label, default)] per input)

    @classmethod
    def of(cls, url: str) -> Page:
        config = httpx.get(f"{url}/config", timeout=30).json()
        components = {c["id"]: c for c in config["components"]}
        events = {}
        for index, dependency in enumerate(config["dependencies"]):
            if not dependency["targets"]:
                continue
            trigger = dependency["targets"][0][0]
            label = components.get(trigger, {}).get("props", {}).get("value")
            inputs = []
            for component in map(components.__getitem__, dependency["inputs"]):
                props = component.get("props", {})
                inputs.append((props.get("label"), None if component["type"] == "state" else props.get("value")))
            events.setdefault(label, (index, trigger, inputs))
        return cls(url, events)

    def click(self, button: str, prompt: str, session: str, **by_label) -> int:
        """Click `button` with `prompt` (other inputs at the page's defaults or `by_label`); bytes streamed back."""
        index, trigger, inputs = self.events[button]
        data = [by_label.get(label, default) for label, default in inputs]
        data[0] = prompt
        body = {"data": data, "event_data": None, "fn_index": index, "trigger_id": trigger, "session_hash": session}
        received = 0
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
            posted = http.post(f"{self.url}/gradio_api/queue/join", json=body)
            if posted.status_code != 200:
                raise RuntimeError(f"{button!r} refused: HTTP {posted.status_code} {posted.text[:200]}")
            with http.stream("GET", f"{self.url}/gradio_api/queue/data", params={"session_hash": session}) as stream:
                for line in stream.iter_lines():
                    received += len(line)
                    if not line.startswith("data: "):
                        continue
                    message = json.loads(line.removeprefix("data: "))
                    if message.get("msg") == "process_completed":
                        if not message.get("success"):
                            raise RuntimeError(f"{button!r} answered an error: {str(message)[:300]}")
                        return received
        raise RuntimeError(f"{button!r}: the stream ended without a result")


def final_output(api: str, stream: str) -> list:
    """The data of the last `complete` event of a server-sent-event stream; an `error` event raises."""
    event = None
    for line in stream.splitlines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event in ("complete", "error"):
            data = json.loads(line.removeprefix("data: "))
            if event == "error":
                raise RuntimeError(f"/{api} answered an error: {data}")
            return data
    raise RuntimeError(f"/{api} ended without a result: {stream[-300:]!r}")


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` in MiB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(command: Sequence[str], port: int, log_path: Path) -> subprocess.Popen:
    """Run `command` with GRADIO_SERVER_PORT=`port`; return once its page answers (or raise with its log)."""
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    log = log_path.open("w")
    server = subprocess.Popen(list(command), cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log_path.read_text()[-3000:]
            raise RuntimeError(f"the server {' '.join(command)} exited with {server.returncode}:\n{tail}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    server.kill()
    raise RuntimeError(f"the server did not answer within {START_TIMEOUT_S} s; its log: {log_path}")


def soak(page: Page, pid: int, requests: int, every: int, warm_up: int, sessions: int, max_new_tokens: int) -> dict:
    """Route + generate `requests` times on the page; RSS (MiB) at 0 and every `every` pairs, growth after warm-up."""
    pool = [uuid.uuid4().hex for _ in range(sessions)]
    curve = {0: rss_mib(pid)}
    for i, prompt in zip(range(1, requests + 1), itertools.cycle(PROMPTS), strict=False):
        session = pool[i % sessions] if sessions else uuid.uuid4().hex
        page.click(ROUTE_BUTTON, f"{prompt} ({i})", session)
        page.click(GENERATE_BUTTON, f"{prompt} ({i})", session, **{MAX_NEW_LABEL: max_new_tokens})
        if i % every == 0 or i in (warm_up, requests):
            curve[i] = rss_mib(pid)
    return {"curve": curve, "growth_after_warm_up": curve[requests] - curve[warm_up]}


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def concurrency(api: Api, clients: int, per_client: int, max_new_tokens: int) -> dict:
    """`clients` threads, each sending `per_client` route + generate pairs; answers compared with solo ones."""
    jobs = [(f"{PROMPTS[i % len(PROMPTS)]} #{i % 12}", 1 + i % 3) for i in range(clients * per_client)]
    solo = {job: ask(api, *job, max_new_tokens)[0] for job in set(jobs)}
    latencies, mismatches, failures, lock = [], [], [], threading.Lock()

    def client(mine: list) -> None:
        for job in mine:
            try:
                answer, seconds = ask(api, *job, max_new_tokens)
            except RuntimeError as err:
                with lock:
                    failures.append(f"{job}: {err}")
                continue
            with lock:
                latencies.append(seconds)
                if answer != solo[job]:
                    mismatches.append(job)

    with ThreadPoolExecutor(clients) as executor:
        list(executor.map(client, [jobs[c::clients] for c in range(clients)]))
    return {
        "clients": clients,
        "requests": len(jobs),
        "mismatches": len(mismatches),
        "failures": failures,
        "p50_s": statistics.median(latencies) if latencies else float("nan"),
        "p95_s": percentile(latencies, 0.95) if latencies else float("nan"),
    }


def ask(api: Api, prompt: str, k: int, max_new_tokens: int) -> tuple[str, float]:
    """(selection, weights, answer) of one route + generate pair with `k` adapters, and its wall time in seconds."""
    start = time.perf_counter()
    session = uuid.uuid4().hex
    routing = api.call("route", prompt, session, k=k)
    answer = api.call("generate", prompt, session, k=k, max_new_tokens=max_new_tokens)
    # what must not change under load: the selection, its weights and the text (timings do change)
    same = json.dumps([routing["selected"], routing["weights"], answer["text"]])
    return same, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="route + generate pairs of the soak")
    parser.add_argument("--every", type=int, default=20, help="read the RSS every this many pairs")
    parser.add_argument("--warm-up", type=int, default=20, help="pairs before the growth is counted")
    parser.add_argument("--sessions", type=int, default=0, help="sessions to cycle through (0: a fresh one per pair)")
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[], help="client counts, e.g. 16 32")
    parser.add_argument("--per-client", type=int, default=2, help="route + generate pairs per concurrent client")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--server", nargs=argparse.REMAINDER, help="the server command (default: python app.py)")
    args = parser.parse_args(argv)
    if not 0 < args.warm_up <= args.requests:
        parser.error(f"--warm-up must be between 1 and --requests ({args.requests}), got {args.warm_up}")
    command = args.server or [sys.executable, "app.py"]
    port = free_port()
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"logo-soak-server-{port}.log"
    server = start_server(command, port, log_path)
    try:
        url = f"http://127.0.0.1:{port}"
        api, page = Api.of(url), Page.of(url)
        result = soak(page, server.pid, args.requests, args.every, args.warm_up, args.sessions, args.max_new_tokens)
        print("pairs  RSS MiB")
        for i, rss in result["curve"].items():
            print(f"{i:5d}  {rss:8.1f}")
        print(f"growth after {args.warm_up} warm-up pairs: {result['growth_after_warm_up']:+.1f} MiB", flush=True)
        result["concurrency"] = [concurrency(api, c, args.per_client, args.max_new_tokens) for c in args.concurrency]
        for row in result["concurrency"]:
            print(
                f"{row['clients']} clients, {row['requests']} pairs: {row['mismatches']} mismatches, "
                f"{len(row['failures'])} failures, p50 {row['p50_s']:.2f} s, p95 {row['p95_s']:.2f} s",
                flush=True,
            )
            for failure in row["failures"][:5]:
                print(f"  failed: {failure}")
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
