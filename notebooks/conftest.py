"""nbval set-up for the course notebooks.

nbval 0.11 executes cells with ``store_history=False``. IPython then cannot see
a cell's trailing ``;`` (it looks the cell up in the input history), so a plot
cell ending in ``;`` shows an extra ``<Figure ...>`` result under nbval that
Jupyter never shows. Executing with ``store_history=True``, as Jupyter does,
makes nbval see exactly what a reader sees.
"""

from nbval.kernel import RunningKernel


def _execute_like_jupyter(self, cell_input, allow_stdin=None):
    return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False)


RunningKernel.execute_cell_input = _execute_like_jupyter
