"""disciplined-widgets: Leslie Smith's disciplined approach to hyper-parameters, live in notebooks.

The headless core (torch only):

- :mod:`~disciplined_widgets.data`: ``load_dataset`` (MNIST-1D, digits, CIFAR, MNIST);
- :mod:`~disciplined_widgets.loader`: ``TensorLoader``, device-resident batches;
- :mod:`~disciplined_widgets.batch`: ``unpack_batch``, the hook that splits any batch;
- :mod:`~disciplined_widgets.step`: ``BatchLoss``, the one way a batch becomes a loss (a
  criterion, the model's own ``.loss``, or the user's ``loss_fn``);
- :mod:`~disciplined_widgets.optim`: an optimizer's LR and momentum (Adam: beta1);
- :mod:`~disciplined_widgets.models`: MLP, 1-D CNN, small CNN, CIFAR ResNets, Smith's 3-layer net;
- :mod:`~disciplined_widgets.train`: ``Training`` (the one loop, a step per call), ``fit``,
  ``evaluate``, ``History``, ``TrainingOptions`` and ``Hook``;
- :mod:`~disciplined_widgets.range_test`: ``lr_range_test``, ``range_tests``, and ``RangeTest``
  around the user's own loop;
- :mod:`~disciplined_widgets.suggest`: smoothing and the LR suggestion rules;
- :mod:`~disciplined_widgets.schedules`: ``one_cycle``, ``cyclical``, ``BatchSizeSchedule``, ``preview``;
- :mod:`~disciplined_widgets.diagnose`: ``diagnose``, the verdict on a run's curves;
- :mod:`~disciplined_widgets.snapshot`: ``Snapshot``, the bitwise save and restore;
- :mod:`~disciplined_widgets.runs`: ``Hyperparameters`` and ``train_run``, one short 1cycle run;
- :mod:`~disciplined_widgets.memory`: ``largest_batch_size``, the biggest batch that fits;
- :mod:`~disciplined_widgets.recipe`: ``discipline``, the whole procedure with its evidence;
- :mod:`~disciplined_widgets.search`: ``Search``, grid/random/TPE on Optuna, shared by workers
  (``python -m disciplined_widgets search worker --study NAME --storage URL``).

Figures come from :mod:`~disciplined_widgets.plots` (matplotlib, imported on use), the
recipe's report from :mod:`~disciplined_widgets.report`. The integrations with Lightning and
Hugging Face's Trainer live in :mod:`disciplined_widgets.integrations` (imported on use, never
by this package).
"""

from .batch import unpack_batch
from .data import Dataset, load_dataset
from .diagnose import Diagnosis, diagnose
from .loader import TensorLoader, cifar_augment
from .range_test import RangeTest, RangeTestCollection, RangeTestResult, lr_range_test, range_tests
from .recipe import Recipe, discipline
from .runs import Hyperparameters, train_run
from .schedules import BatchSizeSchedule, cyclical, one_cycle, preview
from .snapshot import Snapshot
from .step import BatchLoss
from .train import History, Hook, Training, TrainingOptions, evaluate, fit, resolve_device

__all__ = [
    "BatchLoss", "BatchSizeSchedule", "Dataset", "Diagnosis", "History", "Hook",
    "Hyperparameters", "RangeTest", "RangeTestCollection", "RangeTestResult", "Recipe", "Snapshot",
    "TensorLoader", "Training", "TrainingOptions",
    "cifar_augment", "cyclical", "diagnose", "discipline", "evaluate", "fit", "load_dataset",
    "lr_range_test", "one_cycle", "preview", "range_tests", "resolve_device", "train_run",
    "unpack_batch",
]
__version__ = "0.1.0"
