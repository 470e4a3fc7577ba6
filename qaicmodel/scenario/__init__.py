"""Scenarios: ``qaicmodel scenario FILE.json [--json]``.

Contract: ``shared/formats/scenario.md`` (``qaicmodel-scenario/1``); the compatible
extensions (``workload`` on ``activate``, ``schedule`` on ``run``, ``thread`` on
``execute``/``partial_execute`` with ``join``, ``expect_hex`` on ``read_bo``/``ddr_read``,
``{"handle", "dir"}`` execute items, ``pad`` on ``wait``, the control steps ``manage``,
``control_fault``, ``ras`` and ``reset``, ``--control-host``/``--control-fault`` and
``control_verdicts``) and the points scenario.md leaves open are documented in
``docs/formats-extensions.md``.

Modules: :mod:`~qaicmodel.scenario.format` (parsing and validation, rules P1-P6;
field parsers in :mod:`~qaicmodel.scenario.values`), :mod:`~qaicmodel.scenario.control_ops`
(the control steps and the control-plane seam, rules K1-K2),
:mod:`~qaicmodel.scenario.runner` (execution, rules E1-E6, :func:`run_scenario`),
:mod:`~qaicmodel.scenario.report` (the ``qaicmodel-result/1`` report),
:mod:`~qaicmodel.scenario.cli` (the command).  The device a scenario asks for is a
:class:`qaicmodel.spec.dbc.config.DeviceConfig`; hosts are loaded with
:func:`qaicmodel.spec.host.protocol.load_host`.
"""
