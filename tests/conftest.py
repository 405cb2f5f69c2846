import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

# Tests run at smoke scale whatever the caller's environment says.
os.environ["COOC_SCALE"] = "smoke"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny training steps: a second thread only adds
    contention on a shared 2-core machine. Modules ask for it with ``pytestmark``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
