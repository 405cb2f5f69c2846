import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Tests run at smoke scale whatever the caller's environment says.
os.environ["COOC_SCALE"] = "smoke"


@pytest.fixture
def repo() -> Path:
    return REPO
