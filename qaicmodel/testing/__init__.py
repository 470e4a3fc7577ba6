"""Test support: the one place in the package that imports Hypothesis.

:mod:`qaicmodel.testing.machine` builds the co-simulation as a Hypothesis stateful
machine (tests and fuzzing campaigns build on it); it needs the ``test`` extra
(``pip install 'qaicmodel[test]'``).  :mod:`qaicmodel.testing.fuzz` runs the fuzzing
campaigns of ``qaicmodel fuzz`` (its command-line module imports hypothesis only when a
campaign starts, since every ``qaicmodel`` command builds its parser).  No other module of the package imports
hypothesis or z3 (tests/test_habits.py checks it).
"""
