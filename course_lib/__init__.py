"""course_lib: the tested code behind the "Choosing an optimizer" course.

Modules
-------
rules      one pure update function per optimizer (NumPy arrays and torch tensors alike)
optim      drop-in torch.optim classes built on those rules
functions  toy objectives with exact gradients and known minimizers
descent    run a rule on an objective (vectorized over runs) and keep the path
plotting   the course style, one colour per method, contour and loss plots
widgets    ipywidgets playgrounds whose callbacks are course_lib functions
"""

__version__ = "0.1.0"
