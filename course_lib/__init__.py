"""course_lib: the tested code behind the "Choosing an optimizer" course.

Modules
-------
rules      one pure update function per optimizer (NumPy arrays and torch tensors alike), Adam's 2026 successors too
optim      drop-in torch.optim classes built on those rules; the reference per-tensor path
fast_paths the multi-tensor (torch._foreach_*) and flat, compiled paths that optim mixes in (notebook 10)
functions  toy objectives with exact gradients and known minimizers
descent    run a rule on an objective (vectorized over runs) and keep the path
problems   logistic regression on real data with its exact optimum; minibatch SGD runners (notebook 03)
momentum   heavy ball and Nesterov: tunings, predicted and measured rates (notebook 04)
adaptive   per-coordinate effective step sizes of AdaGrad and RMSProp (notebook 05)
adam_lab   bias correction, step sizes, learning-rate sweeps, AMSGrad and Wilson et al. experiments (06-07)
data       datasets as train/validation/test tensors
training   devices, seeding, fit, checkpoints, the learning-rate range test (08-09)
guide      the decision guide's experiments: sparse features, races at tuned learning rates (notebook 09)
speed      the cost model and memory of an optimizer step (notebook 10)
beyond_adam NAdam, RAdam, Adafactor, Lion, Muon, Schedule-Free: state memory, tuned races, Muon's matrix problem (11)
plotting   the course style, one colour per method, contour and loss plots
widgets    ipywidgets playgrounds whose callbacks are course_lib functions
"""

__version__ = "0.1.0"
