"""cooc_minimal: the small library behind the course on patch co-occurrence in SSL.

Data flows one way::

    training:   images -> patches -> augment (views) -> backbone (h) -> projector (z) -> loss
    evaluation: images -> patches -> backbone (h) [-> projector] -> mean over patches (bag)
                -> linear probe / kNN / figures

Training and evaluation meet only through checkpoints (``checkpoint.py``). The dependency
rules, which ``tests/test_structure.py`` checks by reading the imports:

- evaluation (``evaluate``, ``bags``) never imports the training loop (``train``, ``step``,
  ``runs``, ``views``, ``cli``);
- the config is data: ``config`` imports no torch, no loss and no model;
- ``data`` imports no model and no loss; a model imports no loss; a loss imports no loop;
- numbers never draw: ``evaluate`` never imports ``viz``;
- only ``cli`` is the command line, and nothing imports in a circle.

:data:`MODULES` lists every module with what it holds and where the course teaches it;
chapter 0 shows it as a table.
"""

__version__ = "0.1.0"

#: (module, what it holds, the chapter that teaches it), in the order data flows.
MODULES = (
    ("runtime", "scale switch, device and precision choice, seeding, small shared checks", "0"),
    ("paths", "where runs and recorded figures live, in a clone or after pip install", "0"),
    ("show", "the tables, source listings, math and figures of every chapter", "0"),
    ("derivations", "the sympy derivations, step by step", "1-2"),
    ("cooccurrence", "co-occurrence matrices, Proposition 3.1 and its closed-form optimum",
     "1"),
    ("coefficients", "each loss's coefficient names, defaults and ranges (no torch)", "3"),
    ("losses", "spectral, VICReg, TCR, SimCLR, their terms and multi-patch forms", "3"),
    ("distributed", "rank, world size, a gather that carries gradients", "3, 6"),
    ("patches", "batched fixed-scale random and grid patches, with their boxes", "4"),
    ("augment", "BYOL augmentations on whole batches of patches, on any device", "4"),
    ("toyworld", "generated worlds with known co-occurrence, Bayes accuracy, Gram metrics",
     "4-5"),
    ("textureworld", "a toy world of textures painted anew at each occurrence: training "
     "must learn what a random network misses", "7"),
    ("data", "the datasets; device-resident and DataLoader training data; the rank sampler",
     "4, 6"),
    ("models", "ResNet backbones (CIFAR stem), a tiny CNN, the projector", "5"),
    ("config", "a run's configuration as data: TOML, overrides, validation", "5-6"),
    ("views", "the views of one step: patches and augmentations of the global batch", "6"),
    ("step", "one train_step (chunked backward for a large batch), and the model, probe and "
     "optimizer builders", "6"),
    ("optim", "LARS, warmup + cosine", "6"),
    ("checkpoint", "atomic save and load of everything a run needs", "6"),
    ("runs", "the run folder: its lock, metrics log, signals, saved state, folder checks",
     "6"),
    ("train", "the training loop, top to bottom", "6"),
    ("bags", "the one patch-embedding primitive, bag means, bags of a whole dataset", "7"),
    ("evaluate", "linear probe, kNN, multi-scale convergence, a checkpoint's evaluation", "7"),
    ("local_aggregation", "appendix C.4's pooled local features, pretrained backbones", "8"),
    ("verdict", "a claim measured once: figure, threshold fixed in advance, verdict", "7"),
    ("claims", "chapter 7's claims about learning, the untrained twin, all claims at once",
     "7"),
    ("bag_nuisance", "a bag split into what its parts say and what the paint adds: why a kNN "
     "falls short of Bayes", "7"),
    ("parts", "part-level numbers of a toy world: neighbours across paint, the fit to "
     "Prop. 3.1, each a claim", "9"),
    ("viz", "figures only: heatmaps, patch neighbours, curves", "9"),
    ("cli", "the cooc-train and cooc-eval commands: bad input is one sentence", "6-7"),
)
