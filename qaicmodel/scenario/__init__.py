"""Scenarios: ``qaicmodel scenario FILE.json [--json]``.

Contract: ``shared/formats/scenario.md`` (``qaicmodel-scenario/1``); the compatible
extensions (``workload`` on ``activate``, ``schedule`` on ``run``, ``thread`` on
``execute``/``partial_execute`` with ``join``, ``expect_hex`` on ``read_bo``/``ddr_read``,
``{"handle", "dir"}`` execute items, ``pad`` on ``wait``) and the points scenario.md leaves
open are documented in ``docs/formats-extensions.md``.

Modules: :mod:`~qaicmodel.scenario.format` (parsing and validation, rules P1-P6),
:mod:`~qaicmodel.scenario.runner` (execution, rules E1-E6, :func:`run_scenario`),
:mod:`~qaicmodel.scenario.report` (the ``qaicmodel-result/1`` report),
:mod:`~qaicmodel.scenario.cli` (the command).  The device a scenario asks for is a
:class:`qaicmodel.spec.dbc.config.DeviceConfig`; hosts are loaded with
:func:`qaicmodel.spec.host.protocol.load_host`.
"""
