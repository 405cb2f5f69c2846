"""Run by tests/test_chunked.py under torchrun (2 gloo processes): 3 chunked steps under DDP.

At the first forward with a graph of every step, each BatchNorm's running statistics must be
rank 0's, as DDP broadcasts them in a plain step: the passes without a graph may neither
broadcast them (the statistics they leave are restored) nor put the broadcast off. Writes the
largest difference between the ranks, per step, to ``<report>/rank<R>.json``.
Usage: worker.py REPORT_DIR
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from train_tiny import tiny_config

from cooc_minimal.step import build_optimizer, build_trainee, train_step

torch.set_num_threads(1)
dist.init_process_group("gloo")
rank, report = dist.get_rank(), Path(sys.argv[1])
cfg = tiny_config(sync_bn=False)
trainee = build_trainee(cfg, 10, torch.device("cpu"), world=2)
net = torch.nn.parallel.DistributedDataParallel(trainee)
optimizer = build_optimizer(cfg, trainee)
images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8,
                       generator=torch.Generator().manual_seed(1))
labels = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(2))
norms = [m for m in trainee.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
seen: list[torch.Tensor] = []


def first_graph_forward(module, inputs):
    if torch.is_grad_enabled() and not seen:
        seen.append(torch.cat([torch.cat([m.running_mean, m.running_var]) for m in norms]))


norms[0].register_forward_pre_hook(first_graph_forward)
generator, mine, gaps = torch.Generator().manual_seed(0), slice(8 * rank, 8 * rank + 8), []
for _ in range(3):
    seen.clear()
    train_step(net, optimizer, images[mine], labels[mine], cfg=cfg, generator=generator,
               rank=rank, world=2, chunks=2)
    both = [torch.zeros_like(seen[0]) for _ in range(2)]
    dist.all_gather(both, seen[0])
    gaps.append((both[0] - both[1]).abs().max().item())
(report / f"rank{rank}.json").write_text(json.dumps({"gaps": gaps}))
dist.destroy_process_group()
