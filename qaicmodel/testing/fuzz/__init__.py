"""``qaicmodel fuzz``: fuzzing campaigns over the decoders, a host and the real driver.

Issue #13 item 4.  The campaign is built on Hypothesis itself -- its engine (a seeded
``@given`` run shaped like :func:`hypothesis.find`, with the database key set the way
``find`` sets it, ``_hypothesis_internal_database_key``: ``find(random=...)`` itself turns
the database off) and its example databases
(:class:`~hypothesis.database.DirectoryBasedExampleDatabase`, and
:class:`~hypothesis.extra.redis.RedisExampleDatabase` for campaigns across machines) --
with a small scheduler of our own (:mod:`.campaign`).

Why not HypoFuzz (looked at: version 25.11.1, read in full before writing this):
  * its licence (``LicenseRef-HypoFuzz``) allows non-commercial use only and forbids
    modification and redistribution; qaicmodel is GPL-2.0-only and its users include
    companies running CI, so it cannot be a dependency, not even an optional one;
  * it fuzzes pytest-collected ``@given`` tests, runs until stopped (no budget), seeds its
    scheduler from an unseeded ``Random()`` (a run cannot be replayed from a printed seed,
    a project rule) and serves a web dashboard (starlette, trio, hypercorn, black, libcst
    come with it); our targets are plain functions chosen on the command line and must
    stop after ``--budget`` seconds and print a seed that replays.
  What we take from its design: one shared Hypothesis database per campaign, one worker
  process per core, a target that has failed is no longer fuzzed by that worker.

Rules:
  Z1  The property of every decoder target: random or mutated bytes give a result or an
      exception of :mod:`qaicmodel.errors`; anything else is a failure (project rule "bad
      input -> an exception from qaicmodel/errors.py").
  Z2  Every failure is written as a replay file (atomically, fsync'd) the moment a worker
      sees it, and Hypothesis saves it to the example database in the same call, both
      *before* the campaign reports it: a SIGKILL loses nothing.
  Z3  Worker ``w``'s chunk ``c`` of property ``p`` runs with a Hypothesis random seeded from
      (campaign seed, p, w, c): ``--seed N`` replays the generated examples exactly (the
      database adds the failures it already holds in front, as Hypothesis always does).
  Z4  Only this package (under ``qaicmodel/testing/``) imports hypothesis, lazily: the
      command-line module imports it only when a campaign starts (tests/test_fuzz_cli.py).
"""
