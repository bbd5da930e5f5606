"""disciplined-widgets: Leslie Smith's disciplined approach to hyper-parameters, live in notebooks.

The headless core (torch only):

- :mod:`~disciplined_widgets.data`: ``load_dataset`` (MNIST-1D, digits, CIFAR, MNIST);
- :mod:`~disciplined_widgets.loader`: ``TensorLoader``, device-resident batches;
- :mod:`~disciplined_widgets.batch`: ``unpack_batch``, the hook that splits any batch;
- :mod:`~disciplined_widgets.models`: MLP, 1-D CNN, small CNN, CIFAR ResNets, Smith's 3-layer net;
- :mod:`~disciplined_widgets.train`: ``fit``, the one training loop, and its ``History``.
"""

from .batch import unpack_batch
from .data import Dataset, load_dataset
from .loader import TensorLoader, cifar_augment
from .train import History, evaluate, fit, resolve_device

__all__ = [
    "Dataset", "History", "TensorLoader", "cifar_augment", "evaluate", "fit", "load_dataset",
    "resolve_device", "unpack_batch",
]
__version__ = "0.1.0"
