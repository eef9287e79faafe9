"""Lessons' own code: one module per notebook (or pair of notebooks), named after it.

A lab holds one notebook's experiments and figures. Labs import the core (``course_lib.rules``, ``optim``,
``functions``, ``descent``, ``data``, ``training``, ``models``) and ``plotting``/``widgets``; the core never imports a
lab, and no lab imports another lab.
"""
