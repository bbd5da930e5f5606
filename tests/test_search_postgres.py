"""A search shared through a real PostgreSQL server (started on loopback for this module).

Needs Debian's PostgreSQL server binaries (/usr/lib/postgresql/*/bin/; .ci/run installs the
``postgresql`` package) and the psycopg driver (the ``test`` extra).
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch

from disciplined_widgets.search import Progress, Search
from search_workers import finish, grid_points, points, reported_trials, worker, worker_name

pytestmark = pytest.mark.slow

USER, DATABASE = "dw", "dw_search"
GRID6 = {"max_lr": [0.05, 0.1, 0.3], "batch_size": [32, 64]}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """``(port, database)`` of a throw-away server with trust authentication for user dw."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not found:
        pytest.fail("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin/: install "
                    "Debian's postgresql package (apt-get install postgresql; .ci/run does)")
    bin_dir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="dw-postgres-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    as_postgres = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        account = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]

    def server(*command):
        done = subprocess.run([*as_postgres, *command], cwd=root, capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n"
                        f"{done.stderr}\n{server_log}")

    port = _free_port()
    server(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", USER, "--no-sync",
           "--no-locale", "-E", "UTF8")
    server(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
           "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off",
           "start")
    try:
        import psycopg

        with psycopg.connect(f"postgresql://{USER}@127.0.0.1:{port}/postgres",
                             autocommit=True, connect_timeout=10) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")
        yield port, DATABASE
    finally:
        subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m",
                        "immediate", "-w", "stop"], cwd=root, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_a_grid_through_postgres(postgres):
    port, database = postgres
    url = f"postgresql://{USER}@127.0.0.1:{port}/{database}"
    # trials of a fraction of a second each: the second worker starts before the grid is done
    search = Search("mlp", "digits", GRID6, sampler="grid", steps=150,
                    model_kwargs={"hidden": [512, 512]}, study="shared", storage=url,
                    device="cpu")
    workers = [worker("shared", url) for _ in range(2)]
    results = [finish(w) for w in workers]
    for rc, out, err in results:
        assert rc == 0 and "Traceback" not in err, err
        assert out.startswith(f"joined 'shared' in {url}")

    assert search.progress() == Progress(6, 0, 0, 0, 6)
    table = search.table()
    assert len(table) == 6 and points(table, GRID6) == grid_points(GRID6)
    assert (table.steps == 150).all()
    assert set(table.worker) == {worker_name(w) for w in workers}
    ran = sorted(n for _, out, _ in results for n in reported_trials(out))
    assert ran == list(range(6))  # no trial ran twice

    with pytest.raises(ValueError, match=r"no study 'nope' .*; it has \[.*'shared'.*\]"):
        Search.join("nope", url)


def test_a_password_from_the_environment_is_used_and_never_shown(postgres, monkeypatch):
    port, database = postgres
    password = "hunter2-not-shown"
    monkeypatch.setenv("DW_TEST_PW", password)
    from_env = f"postgresql://{USER}:$DW_TEST_PW@127.0.0.1:{port}/{database}"
    search = Search("mlp", "digits", {"max_lr": [0.05, 0.3]}, sampler="grid", steps=10,
                    study="password", storage=from_env, device="cpu")
    assert password not in repr(search) and f"{USER}:***@127.0.0.1" in repr(search)

    # the same study through the password written out: masked too
    literal = f"postgresql://{USER}:{password}@127.0.0.1:{port}/{database}"
    joined = Search.join("password", literal)
    assert joined.task == search.task and joined.progress() == Progress(0, 0, 2, 0, 2)
    assert password not in repr(joined) and f"{USER}:***@127.0.0.1" in repr(joined)

    rc, out, err = finish(worker("password", literal))
    assert rc == 0, err
    assert "joined 'password'" in out and "done: 2 of 2 complete" in out
    assert password not in out + err
    assert search.progress() == Progress(2, 0, 0, 0, 2)
