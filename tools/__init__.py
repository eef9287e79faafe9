"""Course tooling (not part of course_lib): student versions, slides, the HTML site, README figures.

Each module is a script (``python tools/make_student.py --help``) and a set of small functions the tests call.
"""
