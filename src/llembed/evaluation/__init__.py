"""Evaluation on real data with MTEB's metrics, the ablation runner and its report, and the mteb adapter.

Reading evaluation sets (``datasets``, ``bundled``, the task registry) and checking training data against them
(``decontamination``) need only the core, so ``llembed[train]`` can refuse leaking data; scoring (``evaluate``) and
the report (``report``) need the ``eval`` extra and say so when it is missing.
"""
