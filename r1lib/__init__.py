"""r1lib: the pieces of DeepSeek-R1, small enough to read and run on a laptop.

Start with :func:`r1lib.profiles.get_profile` and :func:`r1lib.experiment.build_experiment`, then
train with :class:`r1lib.grpo.GRPOTrainer` and measure with :func:`r1lib.evaluate.evaluate`.
Submodules are imported on use, so ``import r1lib`` stays cheap.
"""

__version__ = "0.1.0"
