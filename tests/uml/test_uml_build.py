"""`qaicmodel uml build`: cache keyed by version and config, lookups, bad input (marker uml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qaicmodel.emu import kbuild
from qaicmodel.errors import UmlError

pytestmark = pytest.mark.uml


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qaicmodel", "uml", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("name", sorted(kbuild.KERNELS))
def test_a_second_build_is_a_lookup_of_the_same_kernel(name: str) -> None:
    k = kbuild.find_kernel(name)
    if k is None:
        pytest.fail(f"no {name} kernel: run `qaicmodel uml build --kernel {name}` first")
    log = k.path.parent / "build.log"
    before = log.stat().st_mtime_ns
    p = _cli("build", "--kernel", name)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(k.path)
    assert log.stat().st_mtime_ns == before, "a cached kernel was configured or built again"
    assert k.version.startswith(name + ".")
    config = (k.path.parent / "build" / ".config").read_text()
    for opt, val in kbuild._options(kbuild.fragment()).items():
        assert f"{opt}={val}" in config, opt


def test_the_cache_key_follows_version_config_and_kasan(tmp_path: Path) -> None:
    tree = tmp_path / "linux"
    tree.mkdir()
    (tree / "Makefile").write_text("VERSION = 7\nPATCHLEVEL = 2\nSUBLEVEL = 13\n")
    keys = {kbuild._key(n, tree, k) for n in ("6.12", "7.2") for k in (False, True)}
    assert len(keys) == 4
    assert kbuild.tree_version(tree) == "7.2.13"


def test_an_option_the_config_drops_is_named(tmp_path: Path) -> None:
    config = tmp_path / ".config"
    config.write_text("CONFIG_DRM=y\n# CONFIG_DRM_ACCEL_QAIC is not set\n")
    with pytest.raises(UmlError, match="CONFIG_DRM_ACCEL_QAIC came out as 'n'"):
        kbuild._check_config(config, {"CONFIG_DRM": "y", "CONFIG_DRM_ACCEL_QAIC": "y"})


def test_the_unstable_suite_comes_from_the_systems_own_sources(tmp_path: Path) -> None:
    opts = kbuild._apt_opts(tmp_path, "unstable")
    src = (tmp_path / "apt-unstable" / "sources.list").read_text()
    assert src.split()[2] == kbuild._debian_uri() and src.split()[3] == "unstable"
    assert f"Dir::Etc::SourceList={tmp_path / 'apt-unstable' / 'sources.list'}" in opts


@pytest.mark.parametrize(
    "args, words",
    [
        (["build", "--kernel-tree", "/nonexistent-tree"], "is not a kernel tree"),
        (["build", "--kernel", "5.4"], "expected one of 6.12, 7.2"),
        (["build", "--kernel", "7.2+ubsan"], "optionally with '+kasan'"),
        (["run", "--kernel-tree", "/nonexistent-tree", "--", "true"], "is not a kernel tree"),
        (
            ["run", "--vmlinux", "/nonexistent/vmlinux", "--", "true"],
            "is not an executable UML kernel",
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], words: str) -> None:
    p = _cli(*args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in p.stderr, p.stderr


def test_a_developer_tree_configured_for_another_arch_is_refused(tmp_path: Path) -> None:
    tree = tmp_path / "linux"
    (tree / "drivers" / "accel").mkdir(parents=True)
    (tree / "Makefile").write_text("VERSION = 7\nPATCHLEVEL = 2\nSUBLEVEL = 0\n")
    (tree / ".config").write_text("CONFIG_X86_64=y\n")
    with pytest.raises(UmlError, match="is not an ARCH=um configuration"):
        kbuild.build(kernel_tree=tree, cache=tmp_path / "cache")
    assert (tree / ".config").read_text() == "CONFIG_X86_64=y\n"  # left as it was
