"""`make compose-check`: the production docker-compose.yml brought up and checked end to end.

Images come from deploy/compose.local.yml (Debian packages on a base made with debootstrap,
for machines that reach Debian's mirror but no image registry), built once and reused while
their inputs are unchanged. Everything is checked from the host, one summary line per check
with its time; the stack (containers, volumes, network) is torn down whatever happens, and
the exit status is non-zero if any check failed. Secrets are generated per run and never
printed. Run it from the repository root: `python deploy/compose_check.py`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from edgeloop.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "deploy" / "local"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "edgeloop.json"
COMPOSE_FILES = ["docker-compose.yml", "deploy/compose.local.yml"]
PROJECT = "edgeloop-check"
# The defaults, which the stack runs with (docker-compose.yml sets neither).
STREAM = Settings.model_fields["stream_key"].default
GROUP = Settings.model_fields["consumer_group"].default
DB = "edgeloop"
BASE_IMAGE = "edgeloop-base:bookworm"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
INPUTS_LABEL = "org.edgeloop.inputs"
# Image -> (Dockerfile, build context, build args): built in this order, each on the one before.
IMAGES: dict[str, tuple[Path, Path, dict[str, str]]] = {
    "edgeloop-python:bookworm": (LOCAL / "python.Dockerfile", LOCAL, {}),
    "edgeloop-redis:bookworm": (LOCAL / "redis.Dockerfile", LOCAL, {}),
    "edgeloop-postgres:bookworm": (LOCAL / "postgres.Dockerfile", LOCAL, {}),
    "edgeloop-prometheus:bookworm": (LOCAL / "prometheus.Dockerfile", LOCAL, {}),
    "edgeloop:bookworm": (ROOT / "Dockerfile", ROOT, {"PYTHON_IMAGE": "edgeloop-python:bookworm"}),
}


class CheckFailed(Exception):
    pass


# --- running things -------------------------------------------------------------------------

def run(cmd: list[str], *, check: bool = True, timeout: float = 600, input: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, cwd=ROOT,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise CheckFailed(f"{' '.join(cmd[:6])} … exited {proc.returncode}: {(proc.stderr or proc.stdout)[-1500:]}")
    return proc


def compose_command() -> list[str]:
    """The docker CLI's compose plugin when it is there, else docker-compose (Debian's 1.29)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise CheckFailed("neither `docker compose` nor `docker-compose` is installed")


def wait_for(what: str, probe: Callable[[], object], timeout: float, interval: float = 1.0):
    """Call ``probe`` until it returns something truthy; its last error or value says why not."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
            last = value
        except (CheckFailed, OSError, ValueError, KeyError, subprocess.SubprocessError) as exc:
            last = exc
        time.sleep(interval)
    raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})"[:1500])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the daemon and the images ----------------------------------------------------------------

def ensure_dockerd() -> str:
    if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return "running"
    if os.geteuid() != 0:
        raise CheckFailed("dockerd is not running and only root can start it")
    log = open("/var/log/dockerd.log", "ab")  # noqa: SIM115 - the daemon keeps writing to it
    subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    wait_for("dockerd", lambda: subprocess.run(["docker", "info"], capture_output=True).returncode == 0, 60)
    return "started"


def debian_mirror() -> str:
    """The Debian mirror apt on this machine uses (deb822 .sources or one-line sources.list)."""
    texts = [p.read_text() for p in sorted(Path("/etc/apt").glob("sources.list.d/*.sources"))]
    for text in texts:
        for stanza in text.split("\n\n"):
            if "Suites: bookworm" in stanza or re.search(r"^Suites:.*\bbookworm\b", stanza, re.M):
                m = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                if m and "security" not in m.group(1):
                    return m.group(1)
    lists = Path("/etc/apt/sources.list")
    if lists.exists():
        m = re.search(r"^deb\s+(?:\[[^]]*]\s+)?(\S+)\s+bookworm\s", lists.read_text(), re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def image_label(image: str) -> str | None:
    proc = run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image], check=False)
    if proc.returncode != 0:
        return None
    return (json.loads(proc.stdout) or {}).get(INPUTS_LABEL)


def build_base() -> str:
    if image_label(BASE_IMAGE) is not None or run(["docker", "image", "inspect", BASE_IMAGE],
                                                 check=False).returncode == 0:
        return "cached"
    if not shutil.which("debootstrap"):
        raise CheckFailed("debootstrap is missing (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="edgeloop-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), debian_mirror()], timeout=1800)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", BASE_IMAGE], stdin=tar.stdout, capture_output=True)
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise CheckFailed(f"docker import failed: {imported.stderr.decode()[-500:]}")
    return "built"


def context_files(context: Path) -> list[Path]:
    """The files a build sends: git's view of the context (tracked and untracked, not ignored)
    minus .dockerignore's simple patterns, which is what decides whether to rebuild."""
    listed = run(["git", "ls-files", "-co", "--exclude-standard", "-z", "--", str(context)]).stdout.split("\0")
    ignored = [line.strip().rstrip("/") for line in (context / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")] if (context / ".dockerignore").exists() else []
    files = []
    for name in filter(None, listed):
        rel = Path(name).relative_to(context.relative_to(ROOT)) if context != ROOT else Path(name)
        parts = rel.parts
        if any(p.removeprefix("**/") in (parts[0], *parts) or rel.match(p) for p in ignored):
            continue
        if (ROOT / name).is_file():
            files.append(ROOT / name)
    return sorted(files)


def inputs_hash(image: str) -> str:
    dockerfile, context, args = IMAGES[image]
    h = hashlib.sha256(json.dumps(args, sort_keys=True).encode())
    parent = args.get("PYTHON_IMAGE")
    h.update((image_label(parent) or "") .encode() if parent else b"")
    for path in [dockerfile, *context_files(context)]:
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    for cert in host_certificates() if context == LOCAL else []:
        h.update(cert.read_bytes())
    return h.hexdigest()[:16]


def host_certificates() -> list[Path]:
    """CA certificates this machine adds to Debian's (a proxy that re-signs TLS, say): the
    Python image trusts them too, or pip cannot reach PyPI from inside a build."""
    return sorted(HOST_CA_DIR.glob("*.crt")) if HOST_CA_DIR.is_dir() else []


def build_images() -> str:
    done = [f"base {build_base()}"]
    for image, (dockerfile, context, args) in IMAGES.items():
        digest = inputs_hash(image)
        if image_label(image) == digest:
            done.append(f"{image.split(':')[0]} cached")
            continue
        cmd = ["docker", "build", "-q", "-t", image, "-f", str(dockerfile), "--label", f"{INPUTS_LABEL}={digest}"]
        for k, v in args.items():
            cmd += ["--build-arg", f"{k}={v}"]
        with tempfile.TemporaryDirectory(prefix="edgeloop-build-") as tmp:
            if context == LOCAL:  # the local images' context, plus the host's certificates
                shutil.copytree(LOCAL, tmp, dirs_exist_ok=True)
                (Path(tmp) / "ca").mkdir()
                for cert in host_certificates():
                    shutil.copy(cert, Path(tmp) / "ca" / cert.name)
                context = Path(tmp)
            run([*cmd, str(context)], timeout=1800)
        done.append(f"{image.split(':')[0]} built")
        # The version this build replaced, untagged now.
        run(["docker", "image", "prune", "-f", "--filter", "dangling=true", "--filter", INPUTS_LABEL], check=False)
    return ", ".join(done)


# --- the stack --------------------------------------------------------------------------------

class Stack:
    """The compose project, with its generated settings (secrets included) in a private env file."""

    def __init__(self, workdir: Path) -> None:
        self.compose = compose_command()
        self.flower_password = secrets.token_urlsafe(18)
        self.ml_token = secrets.token_urlsafe(24)
        self.ports = {name: free_port() for name in ("REDIS", "ML_GRPC", "ML_HTTP", "FLOWER", "PROMETHEUS")}
        self.env_file = workdir / "check.env"
        settings = {
            # Compose reads this file for docker-compose.yml's ${…}, and hands it to every
            # edgeloop service as its env_file (the path a user's .env takes).
            "EDGELOOP_ENV_FILE": str(self.env_file),
            "EDGELOOP_FLOWER_PASSWORD": self.flower_password,
            "EDGELOOP_ML_AUTH_TOKEN": self.ml_token,
            "POSTGRES_PASSWORD": secrets.token_urlsafe(12),
            # Settings only the env_file carries: claims after 5 s, so a killed worker's entries
            # move quickly; beat's flush every 10 s, so Flower's counts show beat alive.
            "EDGELOOP_CLAIM_IDLE_MS": "5000",
            "EDGELOOP_FEEDBACK_FLUSH_BEAT_S": "10",
            **{f"EDGELOOP_{name}_HOST_PORT": str(port) for name, port in self.ports.items()},
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        self.env_file.chmod(0o600)

    def secrets(self) -> list[str]:
        return [self.flower_password, self.ml_token]

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        files = [x for f in COMPOSE_FILES for x in ("-f", f)]
        return run([*self.compose, "--env-file", str(self.env_file), "-p", PROJECT, *files, *args],
                   timeout=timeout, check=check)

    def containers(self, service: str) -> list[str]:
        return sorted(self("ps", "-q", service).stdout.split())

    def states(self) -> dict[str, tuple[str, str, int]]:
        """Container name -> (state, health, exit code)."""
        ids = self("ps", "-q").stdout.split()
        out = run(["docker", "inspect", "--format", "{{.Name}} {{.State.Status}} "
                   "{{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}} {{.State.ExitCode}}", *ids]).stdout
        return {name.lstrip("/"): (state, health, int(code))
                for name, state, health, code in (line.split() for line in out.splitlines())}

    def wait_healthy(self, timeout: float = 300) -> int:
        """Every container running and healthy, or exited 0 (migrate); the number of containers."""
        def all_healthy():
            states = self.states()
            failed = {n: s for n, s in states.items() if s[0] == "exited" and s[2] != 0}
            if failed:
                raise CheckFailed(f"exited: {failed}")
            waiting = {n: s[:2] for n, s in states.items()
                       if not (s[0] == "exited" or s[0] == "running" and s[1] in ("healthy", "-"))}
            if waiting:
                raise CheckFailed(f"not healthy yet: {waiting}")
            return len(states)
        try:
            return wait_for("every container running and healthy", all_healthy, timeout, 3)
        except CheckFailed as exc:
            logs = self("logs", "--tail", "15", check=False).stdout[-3000:]
            raise CheckFailed(f"{exc}\n{logs}") from None

    def sql(self, query: str) -> str:
        return self("exec", "-T", "postgres", "psql", "-U", "edgeloop", "-d", DB, "-At", "-c", query).stdout.strip()

    def exec(self, service: str, *cmd: str, timeout: float = 300) -> str:
        out = self("exec", "-T", service, *cmd, timeout=timeout).stdout
        leaked = [s for s in self.secrets() if s in out]
        if leaked:
            raise CheckFailed(f"`{' '.join(cmd)}` printed a secret")
        return out

    def redis(self, *args: str) -> str:
        return run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.ports["REDIS"]), "--no-raw", *args]).stdout

    def http(self, port: str, path: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports[port]}{path}")
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def promql(self, query: str) -> list[dict]:
        status, body = self.http("PROMETHEUS", "/api/v1/query?" + urllib.parse.urlencode({"query": query}))
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise CheckFailed(f"{query!r}: {answer.get('error', status)}")
        return answer["data"]["result"]


# --- the checks -------------------------------------------------------------------------------

def event(backtest_id: str) -> str:
    return json.dumps({
        "schema_version": 1, "backtest_id": backtest_id, "strategy_id": "compose-check",
        "params": {"min_edge": 0.03, "staking": "flat"}, "window_start": "2023-08-01",
        "window_end": "2024-05-31", "method": "walk_forward",
        "metrics": {"total_bets": 212, "roi": -0.021, "profit": -4.45, "win_rate": 0.41, "profit_factor": 0.93,
                    "sharpe_ratio": -0.35, "max_drawdown": 0.18},
    }, separators=(",", ":"))


def publish(stack: Stack, prefix: str, n: int) -> list[str]:
    ids = [f"{prefix}-{i:03d}" for i in range(n)]
    for backtest_id in ids:
        stack.redis("XADD", STREAM, "*", "event", event(backtest_id))
    return ids


def stored_and_confirmed(stack: Stack, prefix: str, n: int) -> bool:
    """Every one of the n events stored exactly once and confirmed by the ML service."""
    rows = stack.sql(f"SELECT count(*), count(DISTINCT backtest_id), count(*) FILTER (WHERE NOT EXISTS "
                     f"(SELECT FROM feedback_pending WHERE result_id = id)) "
                     f"FROM backtest_results WHERE backtest_id LIKE '{prefix}-%'")
    samples = stack.sql(f"SELECT count(*) FROM ml_feedback_samples WHERE backtest_id LIKE '{prefix}-%'")
    if rows != f"{n}|{n}|{n}" or samples != str(n):
        raise CheckFailed(f"rows|distinct|confirmed = {rows}, ML samples = {samples}, want {n} of each")
    return True


def pending(stack: Stack) -> dict[str, int]:
    """Pending entries of the consumer group, by consumer."""
    out = run(["redis-cli", "-h", "127.0.0.1", "-p", str(stack.ports["REDIS"]), "--raw",
               "XPENDING", STREAM, GROUP]).stdout.splitlines()
    # --raw flattens the reply: count, smallest id, greatest id, then consumer and count pairs.
    pairs = [line for line in out[3:] if line]
    return {pairs[i]: int(pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)}


def check_ingest(stack: Stack, run_id: str) -> str:
    ids = publish(stack, f"cc-{run_id}-ingest", 20)
    publish(stack, f"cc-{run_id}-ingest", 20)  # the same events again: still stored once
    wait_for("20 events stored once and confirmed", lambda: stored_and_confirmed(stack, f"cc-{run_id}-ingest", 20),
             120, 2)
    # One event that cannot be stored, so the dead-letter metrics have a series to show.
    stack.redis("XADD", STREAM, "*", "event", "{not json")
    return f"{len(ids)} events (each published twice) stored once and confirmed by the ML service"


def check_cli(stack: Stack) -> str:
    commands = [
        ["edgeloop", "db", "status"],
        ["edgeloop", "tasks", "list"],
        ["edgeloop", "ml", "status"],
        ["edgeloop", "feedback", "status"],
        ["edgeloop", "dead-letters", "list"],
        ["edgeloop", "ml", "train", "--force", "--wait", "--timeout", "300"],
        ["edgeloop", "discover", "--wait", "--timeout", "400"],
        ["edgeloop", "strategies", "list"],
    ]
    for cmd in commands:
        stack.exec("worker", *cmd, timeout=600)
    setting = stack.exec("worker", "printenv", "EDGELOOP_CLAIM_IDLE_MS").strip()
    if setting != "5000":
        raise CheckFailed(f"a setting of the env_file did not reach the worker: {setting!r}")
    return f"{len(commands)} commands ({', '.join(' '.join(c[1:3]) for c in commands)}); env_file settings reach the worker"


def check_flower(stack: Stack) -> str:
    anonymous, _ = stack.http("FLOWER", "/")
    wrong, _ = stack.http("FLOWER", "/", ("edgeloop", "not-" + stack.flower_password))
    user, _ = stack.http("FLOWER", "/", ("edgeloop", stack.flower_password))
    if (anonymous, wrong, user) != (401, 401, 200):
        raise CheckFailed(f"no credentials {anonymous}, wrong password {wrong}, right password {user}")
    return "401 without credentials (and with a wrong password), 200 with them"


def targets(stack: Stack) -> list[dict]:
    status, body = stack.http("PROMETHEUS", "/api/v1/targets?state=active")
    return json.loads(body)["data"]["activeTargets"] if status == 200 else []


def check_targets(stack: Stack, workers: int) -> str:
    def all_up():
        active = targets(stack)
        jobs = {}
        for t in active:
            jobs.setdefault(t["labels"]["job"], []).append(t["health"])
        want = {"edgeloop-worker": workers, "edgeloop-ml-service": 1, "flower": 1}
        if {j: len(h) for j, h in jobs.items()} != want or any(h != "up" for hs in jobs.values() for h in hs):
            raise CheckFailed(f"targets {jobs}, want {want} all up")
        return jobs
    jobs = wait_for(f"{workers} worker target(s) and every target up", all_up, 120, 3)
    return ", ".join(f"{job} {len(h)}/{len(h)} up" for job, h in sorted(jobs.items()))


THRESHOLD = re.compile(r"^(?P<query>.*\S)\s*(?:>|<|==|!=|>=|<=)\s*[0-9.e+-]+$", re.S)


def queries() -> list[tuple[str, str]]:
    found = [(f"panel {p['title']!r}", t["expr"]) for p in json.loads(DASHBOARD.read_text())["panels"]
             for t in p["targets"]]
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            m = THRESHOLD.match(rule["expr"].strip())
            if not m:
                raise CheckFailed(f"alert {rule['alert']}: not `<query> <op> <threshold>`")
            found.append((f"alert {rule['alert']}", m.group("query")))
            found.append((f"alert {rule['alert']} (whole)", rule["expr"]))
    return found


def check_queries(stack: Stack) -> str:
    """Every panel query and alert query returns a series (the alert's comparison may well
    filter it out: a healthy stack fires nothing), and every whole alert expression parses."""
    def all_answer():
        empty = [name for name, q in queries() if not name.endswith("(whole)") and not stack.promql(q)]
        if empty:
            raise CheckFailed(f"no series for {empty}")
        return True
    wait_for("every panel and alert query to return a series", all_answer, 150, 10)
    n = len(queries())
    return f"{n} queries parse, {sum(1 for name, _ in queries() if not name.endswith('(whole)'))} return series"


def check_kill(stack: Stack, run_id: str) -> str:
    """A worker SIGKILLed holding entries it read but could not store loses none of them: the
    other replica claims them (the victim stays dead meanwhile: no restart policy for it)."""
    victim, survivor = stack.containers("worker")[:2]
    postgres = stack.containers("postgres")[0]
    prefix = f"cc-{run_id}-kill"

    def victims_pending() -> int:  # consumers are named worker@<hostname>:<n>; hostname = short id
        return sum(n for name, n in pending(stack).items() if name.startswith(f"worker@{victim[:12]}:"))

    run(["docker", "update", "--restart=no", victim])
    run(["docker", "pause", survivor])
    run(["docker", "pause", postgres])  # the victim reads entries and hangs storing them
    try:
        publish(stack, prefix, 30)
        held = wait_for("the victim to hold entries pending", victims_pending, 60)
        run(["docker", "kill", victim])
    finally:
        run(["docker", "unpause", postgres], check=False)
        run(["docker", "unpause", survivor], check=False)
    wait_for("the survivor to claim and store all 30", lambda: stored_and_confirmed(stack, prefix, 30), 180, 2)
    wait_for("no pending entries left", lambda: sum(pending(stack).values()) == 0, 60)
    if stack.states()[victim_name(victim)][0] == "running":
        raise CheckFailed("the killed worker came back: its own restart, not a claim, may have stored them")
    stack("up", "-d", "--no-build", "--scale", "worker=2")  # the killed replica again
    return f"{held} entries pending on the killed worker claimed by the other; all 30 stored once"


def victim_name(container: str) -> str:
    return run(["docker", "inspect", "--format", "{{.Name}}", container]).stdout.strip().lstrip("/")


def check_restart(stack: Stack, run_id: str) -> str:
    """`down` then `up`: PostgreSQL's rows and the stream's pending entries are still there."""
    prefix = f"cc-{run_id}-restart"
    rows_before = stack.sql("SELECT count(*) FROM backtest_results")
    stack("stop", "worker", "beat")
    publish(stack, prefix, 10)
    # Delivered to a consumer that never acknowledges: pending entries, kept by the AOF.
    stack.redis("XREADGROUP", "GROUP", GROUP, "compose-check", "COUNT", "100", "STREAMS", STREAM, ">")
    before = pending(stack).get("compose-check", 0)
    if before < 10:
        raise CheckFailed(f"only {before} entries pending before down")
    time.sleep(1.5)  # appendfsync everysec
    stack("down", timeout=300)
    # Redis and PostgreSQL alone first: what they kept is measured before any worker claims it.
    stack("up", "-d", "--no-build", "redis", "postgres", timeout=300)
    stack.wait_healthy()
    after = pending(stack).get("compose-check", 0)
    rows_after = stack.sql("SELECT count(*) FROM backtest_results")
    if after != before or rows_after != rows_before:
        raise CheckFailed(f"pending {before} -> {after}, rows {rows_before} -> {rows_after}")
    stack("up", "-d", "--no-build", "--scale", "worker=2", timeout=600)
    stack.wait_healthy()
    wait_for("the entries pending across the restart to be claimed and stored",
             lambda: stored_and_confirmed(stack, prefix, 10), 180, 2)
    return f"{rows_after} rows and {after} pending entries kept across down/up; then claimed and stored"


def check_promtool() -> str:
    # The token file the compose entrypoint writes must exist for `check config`.
    script = ("printf token > /prometheus/ml_token && promtool check config /etc/prometheus/prometheus.yml"
              " && promtool check rules /etc/prometheus/alerts.yml")
    run(["docker", "run", "--rm", "-v", f"{PROMETHEUS_DIR}:/etc/prometheus:ro", "--entrypoint", "/bin/sh",
         "edgeloop-prometheus:bookworm", "-c", script])
    return "check config and check rules pass"


# --- the run ----------------------------------------------------------------------------------

class Report:
    def __init__(self) -> None:
        self.failed = 0

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[dict]:
        started, note = time.monotonic(), {}
        try:
            yield note
        except Exception as exc:  # every failure is reported, then the run stops
            self.failed += 1
            self.line("FAIL", name, started, f"{type(exc).__name__}: {exc}")
            raise
        self.line("ok", name, started, note.get("detail", ""))

    @staticmethod
    def line(status: str, name: str, started: float, detail: str) -> None:
        print(f"{status:4} {name:34} {time.monotonic() - started:7.1f} s  {detail}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the stack running (tear down by hand)")
    args = parser.parse_args(argv)
    report, started = Report(), time.monotonic()
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="edgeloop-compose-check-") as tmp:
        stack = None
        try:
            with report.step("dockerd") as n:
                n["detail"] = ensure_dockerd()
            with report.step("images") as n:
                n["detail"] = build_images()
            with report.step("promtool") as n:
                n["detail"] = check_promtool()
            stack = Stack(Path(tmp))
            stack("down", "-v", "--remove-orphans", check=False)  # leftovers of an interrupted run
            with report.step("up (worker=1), all healthy") as n:
                stack("up", "-d", "--no-build", timeout=900)
                n["detail"] = f"{stack.wait_healthy()} containers ({' '.join(stack.compose)})"
            with report.step("XADD -> PostgreSQL -> ML service") as n:
                n["detail"] = check_ingest(stack, run_id)
            with report.step("edgeloop CLI in the worker") as n:
                n["detail"] = check_cli(stack)
            with report.step("Flower basic auth") as n:
                n["detail"] = check_flower(stack)
            with report.step("Prometheus targets (worker=1)") as n:
                n["detail"] = check_targets(stack, 1)
            with report.step("scale worker=2, targets") as n:
                stack("up", "-d", "--no-build", "--scale", "worker=2", "--no-recreate")
                stack.wait_healthy()
                n["detail"] = check_targets(stack, 2)
            with report.step("dashboard and alert queries") as n:
                n["detail"] = check_queries(stack)
            with report.step("docker kill a worker") as n:
                n["detail"] = check_kill(stack, run_id)
            with report.step("down/up keeps data and pending") as n:
                n["detail"] = check_restart(stack, run_id)
        except Exception:  # noqa: BLE001 - reported by its step; the teardown below still runs
            if report.failed == 0:
                raise
        finally:
            if stack is not None and not args.keep:
                with report.step("teardown (down -v)"):
                    stack("down", "-v", "--remove-orphans", timeout=300)
    Report.line("FAIL" if report.failed else "ok", "compose-check", started,
                f"{report.failed} check(s) failed" if report.failed else "every check passed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
