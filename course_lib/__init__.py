"""course_lib: the tested code behind the "Choosing an optimizer" course.

The core (no matplotlib, no ipywidgets, no lab imported; ``methods``, ``sweep``, ``benchmark``, ``rules``,
``functions`` and ``descent`` need NumPy only)
-------------------------------------------------------------------------------------------------------------------
methods     the table of the course's optimizers, one row each: name and aliases, label, colour, rule, class,
            reference, family, toy defaults, state size; colours, labels, RULES, OPTIMIZERS and the labs' tables
            are read from it
sweep       learning-rate sweeps: the grid (three points per decade) and the best η of a grid, with its edge flag
benchmark   comparing optimizers: each one's η by one documented statistic (mean final loss over seeds), paired
            differences with a t-interval, performance profiles, the protocol record (notebooks 09 and 12)
rules       one pure update function per optimizer (NumPy arrays and torch tensors alike), Adam's 2026 successors
            too; a ``Rule`` carries its name, options, factory and colour key; public validation helpers
optim       drop-in torch.optim classes built on those rules; the reference per-tensor path
functions   toy objectives with exact gradients and known minimizers
descent     run a rule on an objective (vectorized over runs) and keep the path
data        datasets as train/validation/test tensors (the breast-cancer table is loaded here only)
data        also MNIST-1D (generated offline) and a synthetic Zipfian language with its entropy rate (notebook 12)
training    fit (clipping, autocast, early stopping, schedules), evaluate, History, checkpoints that resume
            exactly, the learning-rate range test on a torch model; re-exports the four modules below
devices     the device, seeding, each epoch's shuffle
inputs      fit's argument checks and losses (classes and sequences too)
schedules   warm-up + cosine, WSD, no-decay parameter groups
range_test  the range test's result and rules (NumPy only; labs.guide runs it on NumPy problems)
models      the seed classifier, the MNIST-1D CNN, a small causal transformer language model

The fast paths
--------------
fast_paths  the multi-tensor (torch._foreach_*) and flat, compiled paths; optim imports it only for foreach=True
            or fused=True (notebook 14)

Drawing and playgrounds
-----------------------
plotting    the course style (applied by an explicit ``use_course_style()``), one colour per method, drawing
            primitives that compute nothing but what they draw
widgets     ``playground(draw, **controls)``, the one helper every playground goes through

The labs (``course_lib.labs``: one module per notebook; each imports the core, plotting and widgets, never
another lab, and the core never imports a lab)
-------------------------------------------------------------------------------------------------------------------
labs.gradient_descent  x² and the conditioned quadratic: views and playgrounds (notebooks 01-02)
labs.stochastic        logistic regression on real data with its exact optimum; minibatch SGD (03)
labs.momentum          heavy ball and Nesterov: tunings, predicted and measured rates (04)
labs.adaptive          per-coordinate effective step sizes of AdaGrad and RMSProp (05)
labs.adam              bias correction, step sizes, learning-rate sweeps, AMSGrad and Wilson et al. (06-07)
labs.seed_classifier   one training run of the seed classifier as a figure, and its playground (08)
labs.beyond_adam       NAdam, RAdam, Adafactor, Lion, AdEMAMix, Muon, Schedule-Free: memory, tuned races (09-10)
labs.preconditioning   Newton, full-matrix AdaGrad, Kronecker factors; Shampoo and SOAP on a matrix problem (11)
labs.where_it_matters  the comparison protocol on a CNN and a transformer LM: sweeps, results file, figures (12)
labs.guide             the decision guide's experiments: sparse features, races at tuned learning rates (13)
labs.fast_steps        the cost model and memory of an optimizer step (14)
"""

import atexit
import gc

__version__ = "0.1.0"

# Two calls that make a notebook faster; neither changes a result.
#
# At import: by the time a notebook imports course_lib it has imported NumPy, matplotlib and usually torch, some
# hundreds of thousands of objects (modules, functions, tables) that live until the kernel exits. Every full
# collection of the cyclic garbage collector walks all of them, and the imports and training loops that follow
# trigger many (about 9 % of the torch notebooks' time in a same-minute A/B test). Freezing moves the objects alive
# now to the collector's permanent generation, so later collections skip them; objects created afterwards are
# collected as usual. The cost: cyclic garbage that already exists now is never collected (a few kilobytes).
#
# At exit: every torch.optim optimizer imports torch._dynamo when it is built, which leaves some 400,000 more
# tracked objects, and the collections the interpreter runs while it shuts down then walk all of them: a notebook
# kernel took 1.5-3 s to exit (0.3 s with this hook). Objects still alive at exit are released by reference counting
# as before; only objects held by reference cycles are then not finalized, which Python never guarantees anyway.
gc.freeze()
atexit.register(gc.freeze)
