"""course_lib itself: what importing the package does to the interpreter."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_importing_course_lib_freezes_what_is_alive_and_again_at_exit():
    # atexit runs its handlers last-registered first, so a handler registered before the import runs after
    # course_lib's: it sees whether the objects created after the import were moved out of the collector's reach.
    script = textwrap.dedent("""
        import atexit, gc
        atexit.register(lambda: print("more frozen at exit:", gc.get_freeze_count() > after_import + 1000))
        before_import = gc.get_freeze_count()
        import course_lib
        after_import = gc.get_freeze_count()
        print("frozen at import:", before_import == 0 and after_import > 1000)
        created_later = [[] for _ in range(5000)]
        print("not frozen yet:", gc.get_freeze_count() == after_import)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:3] == ["frozen at import: True", "not frozen yet: True",
                                              "more frozen at exit: True"]
