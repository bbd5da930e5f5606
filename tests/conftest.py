import pytest
import torch

from disciplined_widgets import TensorLoader, load_dataset


@pytest.fixture(scope="session")
def mnist1d():
    return load_dataset("mnist1d", seed=0)


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture
def digits_loaders(digits):
    train = TensorLoader(digits.x_train, digits.y_train, batch_size=64, seed=0)
    val = TensorLoader(digits.x_val, digits.y_val, batch_size=256, shuffle=False)
    return train, val


@pytest.fixture(autouse=True)
def _few_threads():
    # Two cores here: keep torch from oversubscribing them when tests run alongside others.
    torch.set_num_threads(2)


# the course's reference solutions are run by test_student_copies.py inside the chapters,
# not collected as test modules (some of their names end in _test.py)
collect_ignore = ["course_solutions"]
