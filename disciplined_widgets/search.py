"""Grid, random and TPE searches over short 1cycle runs, on Optuna, shared by many workers.

A :class:`Search` is one Optuna study. Each trial is one :func:`~disciplined_widgets.runs.train_run`
with the trial's hyper-parameters (names from ``runs.HYPERPARAMETERS``) and a fixed budget; its
value is the final validation accuracy (or loss). The task (data, model, budget, space) is
stored in the study itself, so any process that reaches the storage can join it::

    python -m disciplined_widgets search worker --study NAME --storage URL

Grid and random searches put all their trials in the study's queue when it is created
(random points drawn by Optuna's ``RandomSampler`` with the search's seed). Workers claim
queued trials one at a time (an atomic state change in the storage), so no trial runs twice
and none is lost; TPE asks the sampler for each new trial (Bergstra et al. 2011). A running
trial writes a heartbeat; a trial whose worker died is marked failed after ``grace_period``
seconds without one, and its hyper-parameters go back into the queue. (Optuna's own heartbeat,
``RDBStorage(heartbeat_interval=...)`` with ``fail_stale_trials``, works for database storages
only, in whole seconds, and never fails a trial whose worker died before its first beat; this
one is a trial system attribute, the same for every storage.) A trial whose training raises is
marked failed with its error and not run again. Creating a study stores its task, queues its
planned trials, then marks it queued; a study opened without that mark (its creation was
interrupted) gets the missing trials queued.

Storage: None is in memory (or ``$DISCIPLINED_WIDGETS_STORAGE`` when set); ``"journal:PATH"``
or a path ending in ``.log`` is an Optuna journal file (local or shared disk); any other URL
(``sqlite:///search.db``, ``postgresql://user@host/db``, ``mysql://...``) is an Optuna
``RDBStorage``. ``$VARS`` in a URL are read from the environment, so a password can live in
the environment rather than in a notebook; passwords are masked whenever a URL is shown.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import re
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote

import optuna
import torch
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)
from optuna.trial import TrialState
from torch import nn

from . import models
from .checks import (an_int, dict_or_none, existing_device, finite_float, positive_float,
                     positive_int)
from .data import NAMES as DATA_NAMES
from .data import Dataset, load_dataset
from .loader import TensorLoader
from .runs import HYPERPARAMETERS, Hyperparameters, train_run_steps
from .step import CROSS_ENTROPY
from .train import History, Steps, TrainingOptions, drain, resolve_device

SAMPLERS = ("grid", "random", "tpe")
METRICS = {"val_accuracy": "maximize", "val_loss": "minimize"}
MODELS = {"mlp": models.MLP, "cnn1d": models.CNN1D, "small_cnn": models.SmallCNN,
          "resnet20": models.resnet20, "resnet56": models.resnet56,
          "smith3layer": models.Smith3Layer}
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
              "rmsprop": torch.optim.RMSprop}
CRITERIA = {"cross_entropy": CROSS_ENTROPY, "model_loss": None}  # model_loss: outputs.loss
CALLABLES = {"model": MODELS, "optimizer": OPTIMIZERS, "criterion": CRITERIA, "loss_fn": {}}
TASK_KEY = "disciplined_widgets.task"
QUEUED_KEY = "disciplined_widgets.queued"  # set once every planned trial is in the queue
STORAGE_ENV = "DISCIPLINED_WIDGETS_STORAGE"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def log_range(low: float, high: float) -> FloatDistribution:
    """Values drawn log-uniformly from ``[low, high]`` (learning rates, weight decays)."""
    low, high = positive_float("low", low), positive_float("high", high)
    if high < low:
        raise ValueError(f"log_range needs low <= high, got {low:g} and {high:g}")
    return FloatDistribution(low, high, log=True)


def linear_range(low: float, high: float) -> FloatDistribution:
    """Values drawn uniformly from ``[low, high]`` (momentum)."""
    low, high = finite_float("low", low), finite_float("high", high)
    if high < low:
        raise ValueError(f"linear_range needs low <= high, got {low:g} and {high:g}")
    return FloatDistribution(low, high)


# --- storage -------------------------------------------------------------------------------

USER_PASSWORD = re.compile(r"^((?:[\w+.-]+:/*)?[^:/?#@]*):.*@")  # [scheme:[//]]user:PASSWORD@
SECRET_PARAMETER = re.compile(
    r"(?i)([?&;](?:password|passwd|pwd|pass|secret|token|api_?key|sslpassword|sslkey)=)[^&;#]*")


def masked(url: str | None) -> str:
    """``url`` with every secret replaced by ``***``: the password of the user information
    (up to the last ``@``, so malformed URLs such as ``scheme:/user:secret@host`` or
    ``user:secret@host`` without a scheme are covered too) and the values of query parameters such as ``password=``, ``token=`` or ``sslkey=``."""
    if url is None:
        return "in memory"
    return SECRET_PARAMETER.sub(r"\1***", USER_PASSWORD.sub(r"\1:***@", url))


def expand_environment(url: str) -> str:
    """``$NAME`` and ``${NAME}`` replaced by environment variables (unset ones stay as they are).

    In a URL (``scheme://...``) the values are percent-encoded, so a password holding ``@``
    or ``/`` stays a password."""
    is_url = "://" in url

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in os.environ:
            return match.group(0)
        return quote(os.environ[name], safe="") if is_url else os.environ[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, url)


def open_storage(url: str | None) -> optuna.storages.BaseStorage:
    """The Optuna storage for ``url`` (see the module docstring); fails early if unreachable."""
    if url is None:
        return optuna.storages.InMemoryStorage()
    if not isinstance(url, str) or not url:
        raise TypeError(f"storage must be None or a URL string, got {url!r}")
    url = expand_environment(url)
    if url.startswith("journal:") or ("://" not in url and url.endswith(".log")):
        path = url.removeprefix("journal:")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise ValueError(f"storage {path!r}: folder {folder!r} does not exist")
        backend = optuna.storages.journal.JournalFileBackend(path)
        return optuna.storages.JournalStorage(backend)
    if "://" not in url:
        raise ValueError(f"storage must be a URL such as 'sqlite:///search.db' or "
                         f"'journal:search.log', got {masked(url)!r}")
    engine_kwargs = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgres") else {}
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"cannot open storage {masked(url)}: {reason}") from None
    if storage.engine.dialect.name == "sqlite":
        _lock_sqlite_transactions(storage.engine)
    return storage


def _lock_sqlite_transactions(engine) -> None:
    """Make each SQLite transaction take the database's write lock when it begins.

    A worker claims a queued trial by reading its state and then writing RUNNING. SQLite
    ignores ``SELECT ... FOR UPDATE`` and Python's sqlite3 begins a transaction only at the
    write, so two workers could both read WAITING and both run the trial. ``BEGIN IMMEDIATE``
    (SQLAlchemy's recipe for pysqlite) makes the read and the write one atomic step.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners: open new ones


# --- the task a study stores -----------------------------------------------------------------

def _reference(thing: Any, what: str) -> str | None:
    """``"module:name"`` for an importable callable, None for one only this process knows."""
    if isinstance(thing, str):
        return thing
    if what == "criterion" and callable(thing):  # a loss module such as nn.MSELoss()
        return next((name for name, known in CRITERIA.items() if known is thing), None)
    if not callable(thing) or isinstance(thing, nn.Module):
        raise TypeError(f"{what} must be a name or a function that builds it, "
                        f"got {type(thing).__name__}")
    module, name = getattr(thing, "__module__", None), getattr(thing, "__qualname__", "")
    if module in (None, "__main__") or "<" in name:
        return None
    return f"{module}:{name}"


def _resolve(reference: str, names: dict | None, what: str) -> Callable:
    if names is not None and reference in names:
        return names[reference]
    if ":" not in reference:
        known = f" one of {sorted(names)} or" if names else ""
        raise ValueError(f"{what} must be{known} 'module:function', got {reference!r}")
    module, _, name = reference.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


def _distribution(name: str, values) -> BaseDistribution | list:
    if name not in HYPERPARAMETERS:
        raise ValueError(f"unknown hyper-parameter {name!r}; the space takes {HYPERPARAMETERS}")
    if isinstance(values, BaseDistribution):
        if name == "batch_size" and not isinstance(values, IntDistribution):
            raise TypeError("batch_size ranges must be optuna IntDistribution")
        for value in _ends(values):  # the legal values of each form an interval
            _legal(name, value, f"space[{name!r}] = {values} can draw {value!r}")
        return values
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"space[{name!r}] must be a list of values or a range such as "
                        f"log_range(1e-3, 1), got {values!r}")
    values = list(values)
    if not values:
        raise ValueError(f"space[{name!r}] is empty")
    for value in values:
        _legal(name, value, f"space[{name!r}] holds {value!r}")
    return values


def _ends(distribution: BaseDistribution) -> list:
    """The values at the ends of a range, or every choice of a categorical distribution."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    return [distribution.low, distribution.high]


def _legal(name: str, value, where: str) -> None:
    """``value`` must be legal for the hyper-parameter ``name`` (checked by Hyperparameters)."""
    try:
        Hyperparameters().replace(**{name: value})
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}: {error}") from None


def _space_to_json(space: dict) -> dict:
    return {name: (optuna.distributions.distribution_to_json(v) if isinstance(v, BaseDistribution)
                   else {"choices": v}) for name, v in space.items()}


def _space_from_json(data: dict) -> dict:
    return {name: (v["choices"] if isinstance(v, dict) and "choices" in v
                   else optuna.distributions.json_to_distribution(json.dumps(v)
                                                                  if isinstance(v, dict) else v))
            for name, v in data.items()}


# --- results ------------------------------------------------------------------------------------

@dataclass
class Progress:
    """How many trials of a study are in each state.

    ``failed``: trials whose training raised (their error is kept, they are not run again);
    ``requeued``: trials interrupted (stopped, or their worker died) whose point was queued
    again, so they are counted among ``waiting``, ``running`` or ``complete`` too."""

    complete: int
    running: int
    waiting: int
    failed: int
    planned: int | None
    requeued: int = 0

    @property
    def done(self) -> bool:
        """Nothing left to run: every planned trial completed or failed."""
        return self.planned is not None and self.complete + self.failed >= self.planned

    def __str__(self) -> str:
        planned = f" of {self.planned}" if self.planned is not None else ""
        again = f" ({self.requeued} interrupted and queued again)" if self.requeued else ""
        return (f"{self.complete}{planned} complete, {self.running} running, "
                f"{self.waiting} queued, {self.failed} failed{again}")


class Search:
    """A search over ``space`` (see the module docstring).

    ``model``: a name from ``MODELS``, ``"module:function"``, or a callable; called with
    ``model_kwargs``. ``data``: a name for :func:`~disciplined_widgets.load_dataset`,
    ``"module:function"`` or a callable returning a :class:`~disciplined_widgets.Dataset`;
    called with ``data_kwargs``. Callables defined in a notebook run in that notebook only;
    workers in other processes need importable names. ``space`` maps hyper-parameter names to
    lists of values or Optuna distributions (:func:`log_range`); the others take ``fixed``
    values or the defaults of :class:`~disciplined_widgets.runs.Hyperparameters`. Each trial
    trains for ``steps`` optimizer steps or ``epochs`` epochs. ``n_trials``: the size of the
    search (for a grid, the grid). Opening an existing ``study`` with the same task resumes it;
    a different task is refused and the study is left as it was.

    Each trial trains with ``optimizer`` (a name from ``OPTIMIZERS``, ``"module:function"``,
    or a class or function ``params -> optimizer``; Adam's beta1 is the momentum) and
    ``criterion`` (``"cross_entropy"``, None or ``"model_loss"`` for the model's own
    ``.loss``, ``"module:function"``, or a callable) or ``loss_fn`` (``"module:function"`` or a
    callable ``loss_fn(model, batch)``). The other keyword options (``amp``,
    ``accumulation_steps``, ``clip_grad_norm``, ...) are stored with the task and go to every
    run; workers in other processes need importable names for every callable.
    """

    def __init__(self, model, data, space: dict, *, sampler: str = "random",
                 n_trials: int | None = None, steps: int | None = None, epochs: int | None = None,
                 fixed: dict | None = None, metric: str = "val_accuracy",
                 model_kwargs: dict | None = None, data_kwargs: dict | None = None,
                 study: str | None = None, storage: str | None = None, seed: int = 0,
                 device: str | torch.device | None = None, grace_period: float = 60.0,
                 optimizer: Any = "sgd", criterion: Any = "cross_entropy", loss_fn: Any = None,
                 **options):
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {tuple(METRICS)}, got {metric!r}")
        if (steps is None) == (epochs is None):
            raise ValueError("give exactly one of steps and epochs as each trial's budget")
        positive_int("steps", steps, allow_none=True)
        positive_int("epochs", epochs, allow_none=True)
        positive_int("n_trials", n_trials, allow_none=True)
        if not isinstance(space, dict) or not space:
            raise ValueError(f"space must be a non-empty dict of hyper-parameters, got {space!r}")
        space = {name: _distribution(name, values) for name, values in space.items()}
        fixed = dict_or_none("fixed", fixed)
        model_kwargs = dict_or_none("model_kwargs", model_kwargs)
        data_kwargs = dict_or_none("data_kwargs", data_kwargs)
        an_int("seed", seed)
        if study is not None and not isinstance(study, str):
            raise TypeError(f"study must be a name (str) or None, got {study!r}")
        clash = sorted(set(fixed) & set(space))
        if clash:
            raise ValueError(f"{clash} are both searched and fixed")
        Hyperparameters().replace(**fixed)
        if sampler == "grid":
            if any(isinstance(v, BaseDistribution) for v in space.values()):
                raise ValueError("a grid takes lists of values, not ranges")
            size = math.prod(len(v) for v in space.values())
            if n_trials is not None and n_trials != size:
                raise ValueError(f"the grid has {size} points; n_trials={n_trials} differs")
            n_trials = size
        elif n_trials is None:
            raise ValueError(f"a {sampler} search needs n_trials")
        model_ref, data_ref = _reference(model, "model"), _reference(data, "data")
        if criterion is None or (loss_fn is not None and criterion == "cross_entropy"):
            criterion = "model_loss"  # the model's own loss, or loss_fn's
        self._callables = {"optimizer": optimizer, "criterion": criterion, "loss_fn": loss_fn}
        refs = {what: _reference(value, what) if value is not None else None
                for what, value in self._callables.items()}
        self._local = sorted(what for what, value in self._callables.items()
                             if value is not None and refs[what] is None)
        for what in ("optimizer", "criterion"):
            if isinstance(self._callables[what], str):
                _resolve(self._callables[what], CALLABLES[what], what)  # unknown names fail now
        TrainingOptions.of(options)
        if "device" in options or any(callable(v) for v in options.values()):
            raise TypeError(f"options {sorted(options)}: give the device as device= and functions "
                            f"as loss_fn= or criterion=; the other options must be plain values")
        if isinstance(model, str) and model not in MODELS and ":" not in model:
            raise ValueError(f"model must be one of {sorted(MODELS)}, 'module:function' or a "
                             f"function, got {model!r}")
        if isinstance(data, str) and data not in DATA_NAMES and ":" not in data:
            raise ValueError(f"data must be one of {DATA_NAMES}, 'module:function' or a "
                             f"function, got {data!r}")
        self._model, self._data = model, data
        self.task = {
            "model": model_ref, "model_kwargs": model_kwargs,
            "data": data_ref, "data_kwargs": data_kwargs,
            "space": _space_to_json(space), "fixed": fixed, "sampler": sampler,
            "n_trials": n_trials, "steps": steps, "epochs": epochs, "metric": metric,
            "seed": seed, **refs, "local": self._local, "options": dict(options),
        }
        json.dumps(self.task)  # fails early on values a storage cannot hold
        self.space = space
        self.grace_period = positive_float("grace_period", grace_period)
        if device is not None:
            existing_device(device)
        self.device = device
        self.storage_url = storage if storage is not None else os.environ.get(STORAGE_ENV)
        self._storage = open_storage(self.storage_url)
        self.study = self._open_study(study)
        self._loaders = None

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def join(cls, study: str, storage: str | None = None, **options) -> "Search":
        """Open the existing ``study`` in ``storage`` with the task it stores."""
        if not isinstance(study, str):
            raise TypeError(f"study must be a study's name (str), got {study!r}")
        url = storage if storage is not None else os.environ.get(STORAGE_ENV)
        backend = open_storage(url)
        try:
            existing = optuna.load_study(study_name=study, storage=backend)
        except KeyError:
            names = [s.study_name for s in optuna.get_all_study_summaries(backend)]
            raise ValueError(f"no study {study!r} in {masked(url)}; it has {names}") from None
        task = existing.user_attrs.get(TASK_KEY)
        if task is None:
            raise ValueError(f"study {study!r} was not made by disciplined_widgets.search")
        if task["model"] is None or task["data"] is None:
            raise ValueError(f"study {study!r} uses a model or data defined in a notebook; to "
                             f"join it from another process, define them in an importable "
                             f"module and pass 'module:function'")
        if task.get("local"):
            raise ValueError(f"study {study!r} uses {', '.join(task['local'])} defined in a "
                             f"notebook; to join it from another process, define them in an "
                             f"importable module and pass 'module:function'")
        return cls(task["model"], task["data"], _space_from_json(task["space"]),
                   sampler=task["sampler"], n_trials=task["n_trials"], steps=task["steps"],
                   epochs=task["epochs"], fixed=task["fixed"], metric=task["metric"],
                   model_kwargs=task["model_kwargs"], data_kwargs=task["data_kwargs"],
                   study=study, storage=url, seed=task["seed"],
                   optimizer=task.get("optimizer", "sgd"),
                   criterion=task.get("criterion", "cross_entropy"),
                   loss_fn=task.get("loss_fn"), **task.get("options", {}), **options)

    def _open_study(self, name: str | None) -> optuna.Study:
        direction = METRICS[self.task["metric"]]
        if name is not None and name in [s.study_name for s in
                                         optuna.get_all_study_summaries(self._storage)]:
            study = optuna.load_study(study_name=name, storage=self._storage,
                                      sampler=self._sampler())
            stored = study.user_attrs.get(TASK_KEY)
            if stored is None and study.get_trials(deepcopy=False):
                raise ValueError(f"study {name!r} was not made by disciplined_widgets.search; "
                                 f"use another name")
            if stored is not None and not self._same_task(stored):
                raise ValueError(f"study {name!r} already exists with a different task; use "
                                 f"Search.join({name!r}, storage) or another name")
        else:
            if name is None:  # a readable name; pass study= to open it again later
                name = f"{self.task['sampler']}-search-{uuid.uuid4().hex[:6]}"
            study = optuna.create_study(study_name=name, storage=self._storage,
                                        direction=direction, sampler=self._sampler())
        if not study.user_attrs.get(QUEUED_KEY):
            self._queue_planned(study)
        return study

    def _queue_planned(self, study: optuna.Study) -> None:
        """Store the task and queue the planned points the study lacks, then mark it queued: a
        study whose creation was interrupted is completed when it is opened again."""
        study.set_user_attr(TASK_KEY, self.task)
        queued = Counter(_point(t) for t in study.get_trials(deepcopy=False)
                         if "retry_of" not in t.user_attrs)
        for params in self._planned_points():
            if queued[_point(params)] > 0:
                queued[_point(params)] -= 1
            else:
                study.enqueue_trial(params)
        study.set_user_attr(QUEUED_KEY, True)

    def _same_task(self, stored: dict) -> bool:
        mine = json.loads(json.dumps(self.task))
        ignore = {"model", "data"} if None in (mine["model"], mine["data"]) else set()
        ignore |= set(mine["local"])
        return all(stored.get(k) == v for k, v in mine.items() if k not in ignore)

    def _sampler(self) -> optuna.samplers.BaseSampler:
        if self.task["sampler"] == "tpe":
            return optuna.samplers.TPESampler(seed=self.task["seed"], n_startup_trials=5)
        return optuna.samplers.RandomSampler(seed=self.task["seed"])

    def _planned_points(self) -> list[dict]:
        """Every trial of a grid, or the seeded random points; TPE plans nothing ahead."""
        names = sorted(self.space)
        if self.task["sampler"] == "grid":
            import itertools
            return [dict(zip(names, values))
                    for values in itertools.product(*(self.space[n] for n in names))]
        if self.task["sampler"] == "random":
            draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=self.task["seed"]))
            return [draw.ask(self._distributions()).params for _ in range(self.task["n_trials"])]
        return []

    def _distributions(self) -> dict[str, BaseDistribution]:
        return {name: (v if isinstance(v, BaseDistribution) else CategoricalDistribution(v))
                for name, v in self.space.items()}

    # -- running ------------------------------------------------------------------------------

    def progress(self) -> Progress:
        """Counts of trials by state (see :class:`Progress`)."""
        trials = self.study.get_trials(deepcopy=False)
        states = [t.state for t in trials]
        retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
        requeued = sum(t.state == TrialState.FAIL and t.number in retried for t in trials)
        return Progress(states.count(TrialState.COMPLETE), states.count(TrialState.RUNNING),
                        states.count(TrialState.WAITING), states.count(TrialState.FAIL) - requeued,
                        self.task["n_trials"], requeued)

    def errors(self) -> dict[int, str]:
        """The error of every trial whose training raised, by trial number."""
        return {t.number: t.user_attrs["error"]
                for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                if "error" in t.user_attrs}

    def fail_stale_trials(self) -> list[int]:
        """Mark running trials silent for ``grace_period`` seconds failed and queue them again
        (silent since their start when their worker died before its first heartbeat)."""
        failed = []
        now = time.time()
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            beat = trial.system_attrs.get("heartbeat")
            if beat is None and trial.datetime_start is not None:
                beat = trial.datetime_start.timestamp()
            if beat is None or now - beat <= self.grace_period:
                continue
            if self._set_state(trial.number, TrialState.FAIL):
                self.study.enqueue_trial(trial.params or trial.system_attrs.get("fixed_params", {}),
                                         user_attrs={"retry_of": trial.number})
                failed.append(trial.number)
        return failed

    def _trial_id(self, number: int) -> int:
        return self._storage.get_trial_id_from_study_id_trial_number(
            self._storage.get_study_id_from_name(self.study.study_name), number)

    def _set_state(self, number: int, state: TrialState) -> bool:
        try:
            return self._storage.set_trial_state_values(self._trial_id(number), state=state)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False

    def _next_trial(self) -> optuna.Trial | None:
        """Claim a queued trial, or ask TPE for a new one; None when nothing is left to do."""
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            if self._set_state(trial.number, TrialState.RUNNING):
                return optuna.Trial(self.study, self._trial_id(trial.number))
        if self.task["sampler"] != "tpe":
            return None
        finished = self.study.get_trials(deepcopy=False,
                                         states=(TrialState.COMPLETE, TrialState.RUNNING))
        if len(finished) + len(self.errors()) >= self.task["n_trials"]:
            return None
        return self.study.ask(self._distributions())

    def _others_running(self) -> bool:
        """Whether trials of other workers (or of a crashed one) still run."""
        return bool(self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    def _wait_for_others(self, seconds: float, stop_event: Any) -> Steps[None]:
        """Wait ``seconds`` (or until ``stop_event``), yielding every 0.1 s."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (stop_event is not None and stop_event.is_set()):
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))
            yield

    def _loaders_for_trials(self):
        if self._loaders is None:
            data = self._data if callable(self._data) else (
                _resolve(self._data, None, "data") if ":" in self._data else None)
            kwargs = self.task["data_kwargs"]
            dataset = data(**kwargs) if data is not None else load_dataset(self._data, **kwargs)
            if not isinstance(dataset, Dataset):
                raise TypeError(f"data must give a Dataset, got {type(dataset).__name__}")
            device = resolve_device(self.device)
            self._dataset_shape = (dataset.input_shape, dataset.num_classes)
            self._loaders = (
                TensorLoader(dataset.x_train, dataset.y_train, shuffle=True, device=device),
                TensorLoader(dataset.x_val, dataset.y_val, 1000, shuffle=False, device=device))
        return self._loaders

    def _model_factory(self) -> Callable[[], nn.Module]:
        """The model builder; a built-in model also gets the data's input size and classes."""
        build = self._model if callable(self._model) else _resolve(self._model, MODELS, "model")
        kwargs = dict(self.task["model_kwargs"])
        if isinstance(self._model, str) and self._model in MODELS:
            shape, classes = self._dataset_shape
            accepted = inspect.signature(build).parameters
            fitted = {"num_classes": classes, "in_features": math.prod(shape)}
            if len(shape) == 3:  # images: channels, height, width
                fitted.update(in_channels=shape[0], image_size=shape[-1])
            kwargs = {**{k: v for k, v in fitted.items() if k in accepted}, **kwargs}
        return lambda: build(**kwargs)

    def _training(self) -> dict:
        """The optimizer, the criterion and loss_fn of every run, resolved from the task."""
        out = {}
        for what, value in self._callables.items():
            out[what] = _resolve(value, CALLABLES[what], what) if isinstance(value, str) else value
        return out

    def _hyperparameters(self, trial: optuna.Trial) -> Hyperparameters:
        values = {}
        for name, space in self._distributions().items():
            if isinstance(space, CategoricalDistribution):
                values[name] = trial.suggest_categorical(name, space.choices)
            elif isinstance(space, IntDistribution):
                values[name] = trial.suggest_int(name, space.low, space.high, log=space.log)
            else:
                values[name] = trial.suggest_float(name, space.low, space.high, log=space.log)
        return Hyperparameters().replace(**self.task["fixed"], **values)

    def run(self, n_trials: int | None = None, *, callback: Callable[[int, History], Any] | None = None,
            stop_event: Any = None, on_trial: Callable[[int, float | None], Any] | None = None,
            heartbeat: float = 5.0) -> Progress:
        """Run trials in this process until the study is done, ``n_trials`` were run here, or
        ``stop_event`` is set; other processes may run trials of the same study meanwhile.
        When nothing is queued but trials of other workers still run, it waits for them (every
        ``heartbeat`` seconds it looks again): they complete, or their worker died and they are
        queued again after ``grace_period`` seconds without a heartbeat, and run here.

        ``callback(trial_number, history)`` follows each trial live; ``on_trial(trial_number,
        value)`` runs after each (value None when it did not complete). A trial whose training
        raises is marked failed with its error (see :meth:`errors`) and is not run again; a
        trial interrupted by ``stop_event``, KeyboardInterrupt or closing :meth:`run_steps` is
        marked failed and queued again (KeyboardInterrupt is then re-raised). :meth:`run_steps`
        is the same one optimizer step at a time.
        """
        return drain(self.run_steps(n_trials, callback=callback, stop_event=stop_event,
                                    on_trial=on_trial, heartbeat=heartbeat))

    def run_steps(self, n_trials: int | None = None, *,
                  callback: Callable[[int, History], Any] | None = None, stop_event: Any = None,
                  on_trial: Callable[[int, float | None], Any] | None = None,
                  heartbeat: float = 5.0) -> Steps[Progress]:
        """:meth:`run` as a generator that yields after every optimizer step and returns the
        :class:`Progress`; closing it mid-trial marks the trial failed and queues it again."""
        if positive_float("heartbeat", heartbeat) * 2 >= self.grace_period:
            raise ValueError(f"heartbeat={heartbeat:g} s must be under half of grace_period="
                             f"{self.grace_period:g} s, or peers would fail healthy trials")
        positive_int("n_trials", n_trials, allow_none=True)
        train_loader, val_loader = self._loaders_for_trials()
        factory = self._model_factory()
        ran = 0
        while n_trials is None or ran < n_trials:
            if stop_event is not None and stop_event.is_set():
                break
            self.fail_stale_trials()
            trial = self._next_trial()
            if trial is None:
                if not self._others_running():
                    break
                yield from self._wait_for_others(heartbeat, stop_event)
                continue
            hp = self._hyperparameters(trial)
            value = yield from self._trial_steps(trial, hp, factory, train_loader, val_loader,
                                                 callback, stop_event, heartbeat)
            ran += 1
            if on_trial is not None:
                on_trial(trial.number, value)
        return self.progress()

    def _trial_steps(self, trial, hp, factory, train_loader, val_loader, callback, stop_event,
                     heartbeat: float) -> Steps[float | None]:
        trial_id = self._trial_id(trial.number)
        beating = threading.Event()

        def beat():
            while not beating.wait(heartbeat):
                try:
                    self._storage.set_trial_system_attr(trial_id, "heartbeat", time.time())
                except optuna.exceptions.UpdateFinishedTrialError:
                    return  # declared dead meanwhile (see below)

        self._storage.set_trial_system_attr(trial_id, "heartbeat", time.time())
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        beater = threading.Thread(target=beat, daemon=True)
        beater.start()
        run_callback = None if callback is None else (lambda h: callback(trial.number, h))
        try:
            history = yield from train_run_steps(
                factory, train_loader, val_loader, hp, steps=self.task["steps"],
                epochs=self.task["epochs"], seed=self.task["seed"], device=self.device,
                callback=run_callback, stop_event=stop_event, **self._training(),
                **self.task["options"])
        except Exception as error:  # the trial's own failure: kept, not run again
            beating.set()
            self._fail_with_error(trial_id, error)
            return None
        except BaseException:  # interrupted: run it again later
            beating.set()
            self._fail_and_requeue(trial)
            raise
        beating.set()
        if history.stop_reason == "stopped":
            self._fail_and_requeue(trial)
            return None
        value = (history.val_accuracy if self.task["metric"] == "val_accuracy"
                 else history.val_loss)[-1]
        if value is None or not math.isfinite(value):
            value = math.inf if self.task["metric"] == "val_loss" else 0.0
        try:
            trial.set_user_attr("curve", {
                "step": list(history.eval_step), "val_loss": _finite(history.val_loss),
                "val_accuracy": _finite(history.val_accuracy)})
            trial.set_user_attr("train_loss", _finite(history.train_loss[-1:])[0])
            trial.set_user_attr("steps", history.steps_done)
            trial.set_user_attr("seconds", history.time[-1] if history.time else 0.0)
            trial.set_user_attr("stop_reason", history.stop_reason)
            told = self.study.tell(trial, value, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            told = None
        # None: declared dead while it ran (a pause longer than grace_period); it was requeued
        return value if told is not None and told.state == TrialState.COMPLETE else None

    def _fail_with_error(self, trial_id: int, error: Exception) -> None:
        try:
            self._storage.set_trial_user_attr(trial_id, "error", f"{type(error).__name__}: {error}")
            self._storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # declared dead meanwhile, and queued again by a peer

    def _fail_and_requeue(self, trial: optuna.Trial) -> None:
        if self._set_state(trial.number, TrialState.FAIL):
            self.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})

    # -- reading ------------------------------------------------------------------------------

    @property
    def metric(self) -> str:
        return self.task["metric"]

    def table(self):
        """One row per trial (a pandas DataFrame): state, hyper-parameters, metrics, cost."""
        import pandas as pd
        rows = []
        for t in self.study.get_trials(deepcopy=False):
            curve = t.user_attrs.get("curve", {})
            rows.append({
                "trial": t.number, "state": t.state.name.lower(),
                **{name: t.params.get(name, t.system_attrs.get("fixed_params", {}).get(name))
                   for name in sorted(self.space)},
                "val_loss": (curve.get("val_loss") or [None])[-1],
                "val_accuracy": (curve.get("val_accuracy") or [None])[-1],
                "train_loss": t.user_attrs.get("train_loss"),
                "steps": t.user_attrs.get("steps"), "seconds": t.user_attrs.get("seconds"),
                "worker": t.user_attrs.get("worker"), "retry_of": t.user_attrs.get("retry_of"),
                "error": t.user_attrs.get("error"),
            })
        return pd.DataFrame(rows)

    def completed(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    @property
    def best(self) -> dict | None:
        """The best complete trial: its number, value and full hyper-parameters."""
        trials = self.completed()
        if not trials:
            return None
        pick = max if METRICS[self.metric] == "maximize" else min
        trial = pick(trials, key=lambda t: t.value)
        hp = Hyperparameters().replace(**self.task["fixed"], **trial.params)
        return {"trial": trial.number, self.metric: trial.value, **hp.to_dict()}

    @property
    def total_steps(self) -> int:
        """Optimizer steps of all complete trials."""
        return sum(t.user_attrs.get("steps", 0) for t in self.completed())

    def plot(self):
        """The metric against each searched hyper-parameter."""
        from .plots import plot_search
        return plot_search(self)

    def plot_curves(self, top: int = 5):
        """Validation curves of the ``top`` best trials."""
        positive_int("top", top)
        from .plots import plot_search_curves
        return plot_search_curves(self, top)

    def __repr__(self) -> str:
        return (f"Search({self.study.study_name!r}, {self.task['sampler']}, "
                f"{sorted(self.space)}, storage={masked(self.storage_url)}: {self.progress()})")


def _point(trial_or_params) -> tuple:
    """A trial's point (its parameters, or those it was queued with) as a comparable key."""
    params = trial_or_params
    if isinstance(params, optuna.trial.FrozenTrial):
        params = params.system_attrs.get("fixed_params") or params.params
    return tuple(sorted(params.items()))


def _finite(values) -> list:
    return [v if v is not None and math.isfinite(v) else None for v in values]
