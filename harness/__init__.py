"""The aiolode proof harness: fault schedules, crashes, races, fuzzing, cancellation.

Each module is a script (``python -m harness.<name> --help``) whose default
size is the long run recorded in ``docs/reliability.md``; ``tests/harness/``
runs the same code at CI size. ``nox -s harness_<name>`` runs the long version.
"""
