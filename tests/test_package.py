"""course_lib itself: what importing the package does to the interpreter."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_importing_course_lib_freezes_the_collector_at_exit():
    # atexit runs its handlers last-registered first, so a handler registered before the import runs after
    # course_lib's: it sees whether the objects alive at exit were moved out of the collector's reach.
    script = textwrap.dedent("""
        import atexit, gc
        atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))
        import course_lib
        print("frozen before exit:", gc.get_freeze_count() > 0)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:2] == ["frozen before exit: False", "frozen at exit: True"]
