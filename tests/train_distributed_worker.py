"""Run by tests/test_train_distributed.py under torchrun: the training command line on each rank.

Every function that writes into the run folder is wrapped to count its calls on this rank;
the counts go to ``<report>/rank<R>.json`` (outside the run folder), so the test can check that
only rank 0 wrote. Usage: worker.py REPORT_DIR -- <cooc_minimal.train arguments>
"""

import json
import sys
from pathlib import Path

import torch

from cooc_minimal import runs
from cooc_minimal import train as training
from cooc_minimal.cli import train_main

torch.set_num_threads(1)
report, argv = Path(sys.argv[1]), sys.argv[3:]
writes = {"save_checkpoint": 0, "save_config": 0, "metrics_rows": 0}


def counting(name, fn):
    def wrapper(*args, **kwargs):
        writes[name] += 1
        return fn(*args, **kwargs)
    return wrapper


training.save_checkpoint = counting("save_checkpoint", training.save_checkpoint)
training.save_config = counting("save_config", training.save_config)
runs.MetricsLog.write = counting("metrics_rows", runs.MetricsLog.write)
code = train_main(argv)
rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else int(
    __import__("os").environ.get("RANK", "0"))
(report / f"rank{rank}.json").write_text(json.dumps({"code": code, **writes}))
sys.exit(code)
