"""nc-repro's engine: the Neural Collapse measures (``metrics``), the training loop, checkpoints,
losses, optimisers, the papers' closed forms (``theory``) and the UFM solvers, standing on the
shared basics (``errors``, ``fileio``, ``frames``, ``safe_load``). It imports no top-level module
of the checkout: commands pass it data loaders, models and named values (docs/layers.md).
"""

__version__ = "0.3.1"
