"""Search: grid, random and TPE studies on Optuna, resumed and shared by worker processes.

Real trials (an MLP on the digits data, a few dozen steps each), real storages (memory, journal
file, SQLite) and real worker processes started through the command line.
"""

import os
import signal
import threading
import time

import optuna
import pandas as pd
import pytest
import torch
from optuna.trial import TrialState

from disciplined_widgets.__main__ import main
from disciplined_widgets.search import STORAGE_ENV, Progress, Search, log_range, masked
from search_workers import finish, grid_points, points, reported_trials, worker, worker_name

GRID = {"max_lr": [0.05, 0.3], "momentum": ["cyclical", 0.9], "batch_size": [32, 64]}
GRID6 = {"max_lr": [0.05, 0.1, 0.3], "batch_size": [32, 64]}
# trials long enough (about a second each here) that a second worker starts before the first
# has finished the grid
WORKER_TASK = dict(sampler="grid", steps=150, model_kwargs={"hidden": [512, 512]}, device="cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def trials(search, state=None):
    states = None if state is None else (state,)
    return search.study.get_trials(deepcopy=False, states=states)


def wait_until(condition, timeout=60.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


# ---- in one process ----

def test_a_grid_runs_every_point_once_and_reports_the_best():
    search = Search("mlp", "digits", GRID, sampler="grid", steps=30, device="cpu")
    assert search.progress() == Progress(0, 0, 8, 0, 8)  # the whole grid is queued
    progress = search.run()
    assert progress == Progress(complete=8, running=0, waiting=0, failed=0, planned=8)
    assert progress.done

    table = search.table()
    assert isinstance(table, pd.DataFrame) and len(table) == 8
    assert {"max_lr", "momentum", "batch_size", "val_accuracy", "val_loss", "steps"} <= set(table)
    assert points(table, GRID) == grid_points(GRID)  # each point once
    assert (table.state == "complete").all() and (table.steps == 30).all()
    assert table.val_accuracy.between(0, 1).all() and table.val_accuracy.nunique() > 1
    assert (table.val_loss > 0).all()

    best = search.best
    row = table.loc[table.val_accuracy.idxmax()]
    assert best["val_accuracy"] == table.val_accuracy.max() > 0.5
    assert best["trial"] == row.trial
    assert (best["max_lr"], best["momentum"], best["batch_size"]) == (
        row.max_lr, row.momentum, row.batch_size)
    assert best["div_factor"] == 10.0 and best["weight_decay"] == 0.0  # the defaults
    assert search.total_steps == 8 * 30

    assert search.run() == progress  # nothing left to do
    assert len(search.table()) == 8


def test_fixed_values_and_the_loss_metric():
    search = Search("mlp", "digits", {"max_lr": [0.05, 0.3]}, sampler="grid", steps=20,
                    fixed={"batch_size": 32, "momentum": 0.9}, metric="val_loss", device="cpu")
    search.run()
    table = search.table()
    best = search.best
    assert best["val_loss"] == table.val_loss.min()
    assert best["batch_size"] == 32 and best["momentum"] == 0.9
    with pytest.raises(ValueError, match="both searched and fixed"):
        Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5,
               fixed={"max_lr": 0.2})


def test_random_search_draws_the_same_points_for_the_same_seed():
    space = {"max_lr": log_range(0.01, 1.0), "weight_decay": [0.0, 1e-4, 1e-3]}

    def planned(seed):
        search = Search("mlp", "digits", space, sampler="random", n_trials=5, steps=10,
                        seed=seed, device="cpu")
        return search, points(search.table(), space, state="waiting")

    a, drawn = planned(3)
    assert planned(3)[1] == drawn
    assert planned(4)[1] != drawn
    assert len({lr for lr, _ in drawn}) == 5
    assert all(0.01 <= lr <= 1.0 for lr, _ in drawn)

    assert a.run().done
    assert points(a.table(), space) == drawn  # the trials ran with the drawn points


def test_tpe_runs_n_trials():
    space = {"max_lr": log_range(0.01, 1.0), "momentum": [0.8, 0.9, "cyclical"]}
    search = Search("mlp", "digits", space, sampler="tpe", n_trials=7, steps=10, device="cpu")
    assert search.progress() == Progress(0, 0, 0, 0, 7)  # TPE plans nothing ahead
    assert search.run() == Progress(7, 0, 0, 0, 7)
    assert search.run() == Progress(7, 0, 0, 0, 7)
    table = search.table()
    assert len(table) == 7 and table.max_lr.between(0.01, 1.0).all()
    assert search.total_steps == 70


def test_run_n_trials_then_resume_from_the_journal_with_a_new_search(tmp_path):
    storage = f"journal:{tmp_path}/s.log"
    arguments = ("mlp", "digits", GRID6)
    options = dict(sampler="grid", steps=20, study="resume", storage=storage, device="cpu")

    first = Search(*arguments, **options)
    assert first.run(2) == Progress(2, 0, 4, 0, 6)

    second = Search(*arguments, **options)  # same task: the same study, resumed
    assert second.study.study_name == "resume"
    assert second.progress() == Progress(2, 0, 4, 0, 6)
    assert second.run() == Progress(6, 0, 0, 0, 6)
    table = second.table()
    assert len(table) == 6 and points(table, GRID6) == grid_points(GRID6)
    assert first.progress() == second.progress()  # one study, seen from both

    before = [(t.number, t.state, t.params, t.value) for t in trials(second)]
    for changed in (dict(options, steps=21), dict(options, sampler="random", n_trials=6)):
        with pytest.raises(ValueError, match="'resume' already exists with a different task"):
            Search(*arguments, **changed)
    with pytest.raises(ValueError, match="different task"):
        Search("mlp", "digits", {"max_lr": [0.05, 0.1]}, **options)
    again = Search.join("resume", storage)
    assert [(t.number, t.state, t.params, t.value) for t in trials(again)] == before
    assert again.task == first.task


def test_join_reads_the_task_back_from_the_study(tmp_path):
    storage = f"journal:{tmp_path}/s.log"
    space = {"max_lr": log_range(0.01, 1.0), "batch_size": [32, 64]}
    made = Search("mlp", "digits", space, sampler="random", n_trials=3, steps=7,
                  fixed={"weight_decay": 1e-4}, model_kwargs={"hidden": [16]}, seed=5,
                  metric="val_loss", study="joined", storage=storage, device="cpu")
    joined = Search.join("joined", storage, device="cpu")
    assert joined.task == made.task and joined.space == made.space
    assert joined.task["model_kwargs"] == {"hidden": [16]} and joined.metric == "val_loss"
    assert joined.progress() == Progress(0, 0, 3, 0, 3)
    assert joined.run(1) == Progress(1, 0, 2, 0, 3)
    assert made.table().steps.dropna().tolist() == [7]


def test_storage_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(STORAGE_ENV, f"journal:{tmp_path}/env.log")
    search = Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5, study="env")
    search.run()
    assert (tmp_path / "env.log").exists()
    assert Search.join("env").progress() == Progress(1, 0, 0, 0, 1)


def test_vars_in_a_url_are_read_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DW_SEARCH_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///$DW_SEARCH_DIR/x.db"
    search = Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5, study="vars",
                    storage=url)
    assert os.listdir(tmp_path) == ["x.db"]  # the variable was expanded, nothing else made
    assert "x.db" in repr(search)
    assert Search.join("vars", url).task == search.task


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_trial_declared_dead_while_it_ran_is_dropped_and_run_again(tmp_path):
    # A worker that pauses longer than the grace period (a suspended laptop, a long GC) finds
    # its trial failed and queued again by another worker: it must go on with the next one.
    storage = f"journal:{tmp_path}/s.log"
    slow = Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=30, study="pause",
                  storage=storage, device="cpu")
    other = Search.join("pause", storage, grace_period=1e-6)  # every trial is silent for longer
    declared = []

    def pause(number, history):
        if history.steps_done == 10 and not declared:
            time.sleep(0.05)
            declared.extend(other.fail_stale_trials())
            time.sleep(0.1)  # the heartbeat thread writes meanwhile

    reported = []
    progress = slow.run(callback=pause, on_trial=lambda n, v: reported.append((n, v)),
                        heartbeat=0.02)
    assert declared == [0]
    assert reported[0] == (0, None) and reported[1][0] == 1 and reported[1][1] > 0
    assert progress == Progress(1, 0, 0, 0, 1, requeued=1)
    table = slow.table().set_index("trial")
    assert table.state.tolist() == ["fail", "complete"] and table.retry_of[1] == 0
    assert table.steps[1] == 30 and pd.isna(table.steps[0])  # the dead trial's result was dropped


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_concurrent_claims_take_each_queued_trial_once(tmp_path, kind):
    # Four searches on one storage, each with its own connection, claim 40 queued trials at
    # once from four threads: every trial must be claimed by exactly one of them.
    storage = f"sqlite:///{tmp_path}/s.db" if kind == "sqlite" else f"journal:{tmp_path}/s.log"
    Search("mlp", "digits", {"max_lr": [0.001 * i for i in range(1, 41)]}, sampler="grid",
           steps=1, study="race", storage=storage)
    searches = [Search.join("race", storage) for _ in range(4)]
    start = threading.Barrier(len(searches))
    claims, errors = [], []

    def claim(search):
        start.wait()
        try:
            while (trial := search._next_trial()) is not None:
                claims.append(trial.number)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=claim, args=(s,)) for s in searches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sorted(claims) == list(range(40))
    assert searches[0].progress() == Progress(0, 40, 0, 0, 40)


# ---- worker processes ----

@pytest.mark.slow
def test_two_worker_processes_share_a_grid_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path}/search.db"
    search = Search("mlp", "digits", GRID6, study="shared", storage=url, **WORKER_TASK)
    workers = [worker("shared", url) for _ in range(2)]
    results = [finish(w) for w in workers]
    for rc, out, err in results:
        assert rc == 0 and "Traceback" not in err, err
        assert "joined 'shared'" in out and "\ndone: " in out
    assert any("done: 6 of 6 complete" in out for _, out, _ in results)  # the last to finish

    assert search.progress() == Progress(6, 0, 0, 0, 6)
    table = search.table()
    assert len(table) == 6 and points(table, GRID6) == grid_points(GRID6)
    assert (table.steps == 150).all()
    assert set(table.worker) == {worker_name(w) for w in workers}  # both took part
    ran = [reported_trials(out) for _, out, _ in results]
    assert sorted(ran[0] + ran[1]) == list(range(6))  # no trial ran twice
    for w, numbers in zip(workers, ran):
        assert set(table.set_index("trial").worker[numbers]) == {worker_name(w)}


@pytest.mark.slow
def test_a_killed_workers_trial_fails_and_is_run_again_by_another(tmp_path):
    url = f"sqlite:///{tmp_path}/search.db"
    space = {"max_lr": [0.05, 0.3], "batch_size": [32, 64]}
    # trials long enough (~0.2 s each, more while torch warms up) to be caught running
    Search("mlp", "digits", space, sampler="grid", steps=300, study="killed", storage=url,
           device="cpu")
    first = worker("killed", url, "--heartbeat", "0.5")
    watcher = Search.join("killed", url)
    wait_until(lambda: any("worker" in t.user_attrs for t in trials(watcher, TrialState.RUNNING))
               or first.poll() is not None, what="the first worker's trial")
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    running = trials(watcher, TrialState.RUNNING)
    assert len(running) == 1, watcher.table()
    killed = running[0]
    assert killed.user_attrs["worker"] == worker_name(first)

    # started at once: it runs the queued trials, then waits out the grace period of the
    # killed worker's trial (not "done: 3 of 4 complete, 1 running") and runs it too
    second = worker("killed", url, "--grace-period", "2", "--heartbeat", "0.5")
    rc, out, err = finish(second)
    assert rc == 0 and "Traceback" not in err, err
    assert "done: 4 of 4 complete, 0 running, 0 queued, 0 failed" in out, out

    table = watcher.table().set_index("trial")
    assert table.state[killed.number] == "fail"
    retry = table[table.retry_of == killed.number]
    assert len(retry) == 1 and retry.state.item() == "complete"
    assert retry.worker.item() == worker_name(second)
    assert tuple(retry[sorted(space)].iloc[0]) == tuple(killed.params[n] for n in sorted(space))
    assert points(table, space) == grid_points(space)  # every point complete once
    assert watcher.progress() == Progress(4, 0, 0, 0, 4, requeued=1)


# ---- bad input: a clear error, nothing created ----

BAD = [
    (dict(space={"lr": [0.1]}), ValueError, "unknown hyper-parameter 'lr'"),
    (dict(space={}), ValueError, "non-empty"),
    (dict(space={"max_lr": []}), ValueError, r"space\['max_lr'\] is empty"),
    (dict(space={"max_lr": [0.1, -1.0]}), ValueError, "max_lr"),
    (dict(space={"max_lr": 0.1}), TypeError, "list of values"),
    (dict(steps=0), ValueError, "steps must be positive"),
    (dict(steps=-5), ValueError, "steps must be positive"),
    (dict(steps=None), ValueError, "exactly one of steps and epochs"),
    (dict(space={"max_lr": log_range(0.01, 1.0)}), ValueError, "grid takes lists"),
    (dict(sampler="random"), ValueError, "random search needs n_trials"),
    (dict(sampler="tpe", n_trials=0), ValueError, "n_trials"),
    (dict(sampler="annealing"), ValueError, "sampler must be one of"),
    (dict(n_trials=3), ValueError, "the grid has 2 points"),
    (dict(metric="accuracy"), ValueError, "metric"),
    (dict(fixed={"batch_size": 0}), ValueError, "batch_size"),
    (dict(model="resnet"), ValueError, "model must be one of"),
    (dict(data="cifar"), ValueError, "data must be one of"),
]


@pytest.mark.parametrize("changes,error,match", BAD, ids=[b[2] for b in BAD])
def test_bad_input_fails_early_and_creates_nothing(tmp_path, changes, error, match):
    arguments = dict(space={"max_lr": [0.1, 0.2]}, sampler="grid", steps=10, study="bad",
                     storage=f"sqlite:///{tmp_path}/bad.db")
    arguments.update(changes)
    with pytest.raises(error, match=match):
        Search(arguments.pop("model", "mlp"), arguments.pop("data", "digits"),
               arguments.pop("space"), **arguments)
    assert os.listdir(tmp_path) == []


def test_an_unreachable_server_fails_early_without_showing_the_password():
    started = time.monotonic()
    with pytest.raises(ValueError, match="cannot open storage") as info:
        Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5,
               storage="postgresql://u:secret@127.0.0.1:1/db")
    assert "secret" not in str(info.value) and "u:***@127.0.0.1:1/db" in str(info.value)
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("storage,error", [
    ("journal:{}/missing/s.log", "folder '{}/missing' does not exist"),
    ("{}/missing/s.log", "folder '{}/missing' does not exist"),
    ("sqlite:///{}/missing/s.db", "cannot open storage sqlite:///{}/missing/s.db: .*unable to open"),
])
def test_a_storage_in_a_missing_folder_is_refused(tmp_path, storage, error):
    with pytest.raises(ValueError, match=error.format(tmp_path)):
        Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5,
               storage=storage.format(tmp_path))
    assert os.listdir(tmp_path) == []


def test_a_sqlite_file_named_log_is_sqlite(tmp_path):
    storage = f"sqlite:///{tmp_path}/search.log"
    Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5, study="s",
           storage=storage)
    assert (tmp_path / "search.log").read_bytes().startswith(b"SQLite format 3")
    assert Search.join("s", storage).progress() == Progress(0, 0, 1, 0, 1)


def test_joining_a_missing_study_names_the_studies_there(tmp_path):
    storage = f"journal:{tmp_path}/s.log"
    Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5, study="real",
           storage=storage)
    with pytest.raises(ValueError, match=r"no study 'nope' in .*s\.log; it has \['real'\]"):
        Search.join("nope", storage)


def test_passwords_are_masked():
    assert masked("postgresql://dw:hunter2@db.example:5432/search") == \
        "postgresql://dw:***@db.example:5432/search"
    assert "p%40ss" not in masked("postgresql://dw:p%40ss@db/search")
    assert masked("mysql+pymysql://a:b@h/d").startswith("mysql+pymysql://a:***@h")
    assert masked("sqlite:///search.db") == "sqlite:///search.db"
    assert masked(None) == "in memory" and masked("journal:s.log") == "journal:s.log"


# ---- the command line ----

def test_the_cli_fails_with_exit_code_2_for_a_missing_study(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5, study="real",
           storage=url)
    rc, out, err = finish(worker("nope", url))
    assert rc == 2, err
    assert err.startswith("error: no study 'nope'") and "['real']" in err
    assert "Traceback" not in err and out == ""


def test_the_cli_never_prints_a_password(capsys):
    url = "postgresql://u:secret@127.0.0.1:1/db"
    assert main(["search", "worker", "--study", "s", "--storage", url]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: cannot open storage postgresql://u:***@127.0.0.1:1/db")
    assert "secret" not in out + err


def test_a_password_from_the_environment_stays_whole_and_hidden(monkeypatch):
    from disciplined_widgets.search import expand_environment, masked

    monkeypatch.setenv("DW_SECRET", "p@ss/word")
    url = expand_environment("postgresql://dw:${DW_SECRET}@127.0.0.1:1/db")
    assert url == "postgresql://dw:p%40ss%2Fword@127.0.0.1:1/db"
    assert masked(url) == "postgresql://dw:***@127.0.0.1:1/db"
    with pytest.raises(ValueError) as error:
        Search("mlp", "digits", {"max_lr": [0.1]}, sampler="grid", steps=5,
               storage="postgresql://dw:$DW_SECRET@127.0.0.1:1/db")
    assert "p@ss" not in str(error.value) and "ss/word" not in str(error.value)
    assert "127.0.0.1" in str(error.value)


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_too():
    search = Search("mlp", "digits", {"max_lr": [0.05, 0.3]}, sampler="grid", steps=20,
                    grace_period=0.2)
    claimed = search._next_trial()  # claimed, as a worker does, which then dies at once
    assert search.progress().running == 1
    time.sleep(0.3)
    assert search.fail_stale_trials() == [claimed.number]
    assert search.progress() == Progress(0, 0, 2, 0, 2, requeued=1)
    search.run(heartbeat=0.05)
    assert search.progress() == Progress(2, 0, 0, 0, 2, requeued=1)


# ---- failures, crashed peers and interrupted creation ----

def test_a_trial_whose_training_raises_is_failed_with_its_error_and_not_run_again():
    built = []

    def model(**kwargs):  # the second trial's model cannot be built
        built.append(1)
        if len(built) == 2:
            raise ValueError("no such layer")
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

    search = Search(model, "digits", {"max_lr": [0.05, 0.1, 0.3]}, sampler="grid", steps=10,
                    device="cpu")
    reported = []
    progress = search.run(on_trial=lambda n, v: reported.append((n, v)))
    assert progress == Progress(2, 0, 0, 1, 3) and progress.done
    assert str(progress) == "2 of 3 complete, 0 running, 0 queued, 1 failed"
    assert reported[1] == (1, None) and reported[0][1] > 0 and reported[2][1] > 0
    assert search.errors() == {1: "ValueError: no such layer"}
    table = search.table().set_index("trial")
    assert table.state[1] == "fail" and table.error[1] == "ValueError: no such layer"
    assert table.error[[0, 2]].isna().all()
    assert search.run() == progress and len(built) == 3  # never run again


def test_a_worker_waits_for_a_crashed_peers_trial_and_runs_it():
    search = Search("mlp", "digits", {"max_lr": [0.05, 0.3]}, sampler="grid", steps=10,
                    grace_period=0.6, device="cpu")
    crashed = search._next_trial()  # claimed by a peer that then crashed
    search._storage.set_trial_system_attr(search._trial_id(crashed.number), "heartbeat",
                                          time.time())
    started = time.monotonic()
    progress = search.run(heartbeat=0.1)
    assert time.monotonic() - started >= 0.6  # it waited out the grace period...
    assert progress == Progress(2, 0, 0, 0, 2, requeued=1) and progress.done  # ...and ran it
    table = search.table()
    assert points(table, {"max_lr": 0}) == [(0.05,), (0.3,)]
    assert table.retry_of.dropna().tolist() == [crashed.number]


def test_a_worker_waits_for_a_live_peers_trial_to_complete():
    search = Search("mlp", "digits", {"max_lr": [0.05, 0.3]}, sampler="grid", steps=10,
                    device="cpu")
    started = threading.Event()

    def slow(number, history):  # the peer's trial takes half a second
        if not started.is_set():
            started.set()
            time.sleep(0.5)

    peer = threading.Thread(target=search.run, args=(1,),
                            kwargs={"callback": slow, "heartbeat": 0.05})
    peer.start()
    started.wait(30)
    progress = search.run(heartbeat=0.05)  # takes the other trial, then waits for the peer
    peer.join()
    assert progress == Progress(2, 0, 0, 0, 2) and progress.done


@pytest.mark.parametrize("sampler", ["grid", "random"])
def test_a_study_whose_queueing_was_interrupted_is_completed_when_opened_again(
        tmp_path, monkeypatch, sampler):
    storage = f"journal:{tmp_path}/s.log"
    space = GRID6 if sampler == "grid" else {"max_lr": log_range(0.01, 1.0)}
    options = dict(sampler=sampler, n_trials=6, steps=5, study="cut", storage=storage,
                   device="cpu")
    enqueue = optuna.Study.enqueue_trial
    queued = []

    def interrupted(study, params, **kwargs):
        if len(queued) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the grid is queued
        queued.append(params)
        enqueue(study, params, **kwargs)

    monkeypatch.setattr(optuna.Study, "enqueue_trial", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Search("mlp", "digits", space, **options)
    monkeypatch.setattr(optuna.Study, "enqueue_trial", enqueue)
    assert Search.join("cut", storage).progress() == Progress(0, 0, 6, 0, 6)  # completed
    again = Search("mlp", "digits", space, **options)
    assert again.progress() == Progress(0, 0, 6, 0, 6)  # nothing queued twice
    assert again.run() == Progress(6, 0, 0, 0, 6)
    if sampler == "grid":
        assert points(again.table(), GRID6) == grid_points(GRID6)
    else:
        fresh = Search("mlp", "digits", space, **dict(options, study="whole"))
        assert points(again.table(), space) == points(fresh.table(), space, state="waiting")


def test_the_worker_reports_failed_trials_and_exits_1(tmp_path, capsys):
    storage = f"journal:{tmp_path}/s.log"
    Search("search_workers:broken_model", "digits", {"max_lr": [0.1, 0.2]}, sampler="grid",
           steps=5, study="broken", storage=storage)
    code = main(["search", "worker", "--study", "broken", "--storage", storage, "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 1 and err == "", err
    assert "trial 0: failed: ValueError: no such layer\n" in out
    assert "done: 0 of 2 complete, 0 running, 0 queued, 2 failed" in out
    assert reported_trials(out) == [0, 1]  # each tried once
