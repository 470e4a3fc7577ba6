"""``qaicmodel uml build``: the User-Mode Linux kernel the real driver runs in.

Sources are Debian's ``linux-source-V`` packages: 6.12 from the system's own
suites (bookworm-security), 7.2 from the unstable suite through a private
sources list kept under the cache (the system's apt setup is never changed; the
archive address is taken from the system's own Debian sources).  The tree is
configured as ``ARCH=um defconfig`` plus ``kconfig.fragment`` (plus
``kconfig-kasan.fragment`` for ``--kasan``), then ``olddefconfig``; every option
of the fragment must come out as asked, else the build stops and names it.

Cache layout (``$QAICMODEL_CACHE``, default ``~/.cache/qaicmodel``)::

    debs/linux-source-V_*.deb        the downloaded package
    src/linux-source-V/              the unpacked tree (read only to us)
    kernels/V-KEY/build/             the object tree (O=)
    kernels/V-KEY/vmlinux            the finished kernel, written last
    kernels/V-KEY/meta.json          version, options, build seconds

``KEY`` hashes the version, the fragments and the tree's identity, so a second
call with the same arguments is a lookup.  ``--kernel-tree DIR`` builds a
developer's own tree instead, in place (``make ARCH=um`` in DIR, its own
``.config`` if it has an ARCH=um one, plus the fragment's options it lacks), and
keeps the vmlinux under ``kernels/tree-KEY/`` (keyed by its path and HEAD/mtime).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from qaicmodel.errors import ArgumentError, UmlError

__all__ = ["KERNELS", "cache_dir", "build", "find_kernel", "fragment", "source_tree", "Kernel"]

#: kernel name -> (Debian package, apt suite: None = the system's own lists)
KERNELS: dict[str, tuple[str, str | None]] = {
    "6.12": ("linux-source-6.12", None),
    "7.2": ("linux-source-7.2", "unstable"),
}
DEFAULT_KERNEL = "7.2"
_HERE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """``$QAICMODEL_CACHE`` or ``~/.cache/qaicmodel``."""
    env = os.environ.get("QAICMODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "qaicmodel"


def fragment(kasan: bool = False) -> str:
    text = (_HERE / "kconfig.fragment").read_text()
    if kasan:
        text += (_HERE / "kconfig-kasan.fragment").read_text()
    return text


def _options(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"(CONFIG_\w+)=(.*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


class Kernel:
    """A built kernel: ``path`` is vmlinux, ``version`` the tree's make version."""

    def __init__(self, path: Path, version: str, name: str, kasan: bool, tree: Path) -> None:
        self.path = path
        self.version = version
        self.name = name
        self.kasan = kasan
        self.tree = tree

    def __repr__(self) -> str:
        return (
            f"Kernel({self.name!r}, {self.version!r}, kasan={self.kasan}, path={str(self.path)!r})"
        )


Progress = Callable[[str], None]


def _say(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


def _run(
    cmd: list[str],
    *,
    what: str,
    cwd: Path | None = None,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    ticker: Callable[[Path], None] | None = None,
) -> str:
    try:
        if log is not None:
            with open(log, "ab") as fh:
                proc = subprocess.Popen(
                    cmd,
                    cwd=cwd,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                )
                try:
                    while proc.poll() is None:
                        try:
                            proc.wait(timeout=2)
                        except subprocess.TimeoutExpired:
                            if ticker is not None:
                                ticker(log)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                returncode = proc.returncode
            out = ""
        else:
            p = subprocess.run(
                cmd, cwd=cwd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
            )
            returncode, out = p.returncode, p.stdout + p.stderr
    except FileNotFoundError as e:
        raise UmlError(f"{what}: {e.filename} is not installed") from None
    if returncode != 0:
        tail = ""
        if log is not None and log.exists():
            lines = log.read_text(errors="replace").splitlines()
            errs = [ln for ln in lines if "error" in ln.lower()] or lines
            tail = errs[-1].strip() if errs else ""
        else:
            tail = (out.strip().splitlines() or [""])[-1]
        where = f" (log {log})" if log is not None else ""
        raise UmlError(f"{what} failed with status {returncode}: {tail}{where}")
    return out


def _debian_uri() -> str:
    """The Debian archive the system's own apt sources name (never hard-coded here)."""
    for p in [Path("/etc/apt/sources.list.d/debian.sources")]:
        if p.exists():
            for line in p.read_text().splitlines():
                if line.startswith("URIs:"):
                    for uri in line.split()[1:]:
                        if "security" not in uri:
                            return uri
    for p in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]:
        if p.exists():
            for line in p.read_text().splitlines():
                parts = line.split()
                if parts[:1] == ["deb"] and "debian" in line and "security" not in line:
                    uris = [w for w in parts[1:] if "://" in w]
                    if uris:
                        return uris[0]
    raise UmlError("no Debian archive in the system's apt sources to fetch the unstable suite from")


def _apt_opts(cache: Path, suite: str) -> list[str]:
    d = cache / f"apt-{suite}"
    (d / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (d / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    src = d / "sources.list"
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    src.write_text(f"deb [signed-by={keyring}] {_debian_uri()} {suite} main\n")
    return [
        "-o",
        f"Dir::Etc::SourceList={src}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={d / 'lists'}",
        "-o",
        f"Dir::Cache::Archives={d / 'archives'}",
        "-o",
        "APT::Get::List-Cleanup=0",
        "-o",
        "APT::Sandbox::User=root",
    ]


def _deb(name: str, cache: Path, progress: Progress | None) -> Path:
    pkg, suite = KERNELS[name]
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{pkg}_*.deb"))
    if found:
        return found[-1]
    opts = _apt_opts(cache, suite) if suite else []
    if suite:
        _say(progress, f"apt: updating the private {suite} list")
        _run(["apt-get", *opts, "-q", "update"], what=f"apt-get update ({suite})")
    _say(progress, f"apt: downloading {pkg}")
    try:
        _run(["apt-get", *opts, "download", pkg], what=f"apt-get download {pkg}", cwd=debs)
    except UmlError as e:
        raise UmlError(
            f"source package {pkg} cannot be fetched: {e} (run apt-get update first?)"
        ) from None
    found = sorted(debs.glob(f"{pkg}_*.deb"))
    if not found:
        raise UmlError(f"apt-get download {pkg} left no .deb in {debs}")
    return found[-1]


def source_tree(name: str, cache: Path | None = None, progress: Progress | None = None) -> Path:
    """The unpacked ``linux-source-NAME`` tree (downloading and unpacking once)."""
    if name not in KERNELS:
        raise ArgumentError(f"unknown kernel {name!r}; known: {', '.join(KERNELS)}")
    cache = cache or cache_dir()
    pkg = KERNELS[name][0]
    tree = cache / "src" / pkg
    if (tree / "Makefile").exists() and (tree / ".qaicmodel-unpacked").exists():
        return tree
    deb = _deb(name, cache, progress)
    _say(progress, f"unpacking {deb.name}")
    (cache / "src").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache / "src") as tmp:
        _run(["dpkg-deb", "-x", str(deb), tmp], what=f"dpkg-deb -x {deb.name}")
        tars = list(Path(tmp).glob("usr/src/linux-source-*.tar.*"))
        if not tars:
            raise UmlError(f"{deb.name} holds no linux-source tarball")
        if tree.exists():
            shutil.rmtree(tree)
        _run(["tar", "-xf", str(tars[0]), "-C", str(cache / "src")], what=f"untar {tars[0].name}")
    if not (tree / "Makefile").exists():
        raise UmlError(f"{tars[0].name} did not unpack to {tree}")
    (tree / ".qaicmodel-unpacked").write_text(deb.name + "\n")
    return tree


#: what a kernel build needs beyond gcc/make: command or header -> Debian package
BUILD_TOOLS = {
    "flex": "flex",
    "bison": "bison",
    "bc": "bc",
    "/usr/include/libelf.h": "libelf-dev",
    "dpkg-deb": "dpkg",
    "xz": "xz-utils",
    "ccache": "ccache",
}


def ensure_tools(progress: Progress | None = None) -> None:
    """Install missing build tools with apt-get when we are root; else name them."""
    missing = sorted(
        {
            pkg
            for tool, pkg in BUILD_TOOLS.items()
            if not (Path(tool).exists() if tool.startswith("/") else shutil.which(tool))
        }
    )
    if not missing:
        return
    if os.geteuid() != 0:
        raise UmlError(f"the kernel build needs {', '.join(missing)}: apt-get install them")
    _say(progress, f"apt: installing {', '.join(missing)}")
    _run(["apt-get", "-q", "update"], what="apt-get update")
    _run(
        ["apt-get", "install", "-y", "-q", *missing],
        what=f"apt-get install {' '.join(missing)}",
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def tree_version(tree: Path) -> str:
    """``VERSION.PATCHLEVEL.SUBLEVEL`` from a kernel tree's Makefile."""
    try:
        head = (tree / "Makefile").read_text(errors="replace")[:2000]
    except OSError:
        raise UmlError(f"{tree} is not a kernel tree (no Makefile)") from None
    fields = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL)\s*=\s*(\d+)", head, re.M))
    if "VERSION" not in fields or "PATCHLEVEL" not in fields:
        raise UmlError(f"{tree}/Makefile names no kernel version")
    return f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields.get('SUBLEVEL', '0')}"


def _tree_identity(tree: Path) -> str:
    if (tree / ".qaicmodel-unpacked").exists():
        return (tree / ".qaicmodel-unpacked").read_text().strip()
    try:
        head = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if head.returncode == 0:
            return f"{tree}@{head.stdout.strip()}"
    except FileNotFoundError:
        pass
    return f"{tree}@{(tree / 'Makefile').stat().st_mtime_ns}"


def _key(name: str, tree: Path, kasan: bool) -> str:
    h = hashlib.sha256()
    for part in (name, _tree_identity(tree), fragment(kasan)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def _slot(cache: Path, name: str, tree: Path, kasan: bool) -> Path:
    label = name if name in KERNELS else "tree"
    return cache / "kernels" / f"{label}{'-kasan' if kasan else ''}-{_key(name, tree, kasan)}"


def find_kernel(
    name: str = DEFAULT_KERNEL,
    *,
    kasan: bool = False,
    kernel_tree: Path | None = None,
    cache: Path | None = None,
) -> Kernel | None:
    """The cached kernel for these arguments, or None when it has not been built."""
    cache = cache or cache_dir()
    if kernel_tree is not None:
        tree = Path(kernel_tree).resolve()
        if not (tree / "Makefile").is_file():
            raise UmlError(f"--kernel-tree {tree} is not a kernel tree (no Makefile)")
        key_name = f"tree:{tree}"
    else:
        if name not in KERNELS:
            raise ArgumentError(f"unknown kernel {name!r}; known: {', '.join(KERNELS)}")
        tree = cache / "src" / KERNELS[name][0]
        if not (tree / ".qaicmodel-unpacked").exists():
            return None
        key_name = name
    slot = _slot(cache, key_name, tree, kasan)
    vm = slot / "vmlinux"
    if not vm.exists():
        return None
    meta = json.loads((slot / "meta.json").read_text()) if (slot / "meta.json").exists() else {}
    return Kernel(vm, meta.get("version", tree_version(tree)), name, kasan, tree)


def _check_config(config: Path, wanted: dict[str, str]) -> None:
    got = _options(config.read_text())
    for opt, val in wanted.items():
        have = got.get(opt, "n")
        if have != val:
            raise UmlError(
                f"{config}: {opt} came out as {have!r} after olddefconfig, the "
                f"fragment asks for {val!r}"
            )


def _ticker(t0: float) -> Callable[[Path], None]:
    """A one-line progress display on a terminal: objects compiled so far, elapsed time."""

    def tick(log: Path) -> None:
        try:
            text = log.read_bytes()
        except OSError:
            return
        n = text.count(b"  CC ")
        sys.stderr.write(f"\r  {n} objects compiled, {time.monotonic() - t0:.0f} s ")
        sys.stderr.flush()

    return tick


def build(
    name: str = DEFAULT_KERNEL,
    *,
    kasan: bool = False,
    kernel_tree: Path | None = None,
    cache: Path | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> Kernel:
    """Build (or find) the kernel; returns it.  Idempotent: a second call is a lookup."""
    cache = cache or cache_dir()
    # a developer's tree is always handed to make (its own incremental build is the cache:
    # uncommitted edits must not hide behind a cached vmlinux); a Debian tree never changes
    found = None if kernel_tree is not None else find_kernel(name, kasan=kasan, cache=cache)
    if found is not None:
        return found
    ensure_tools(progress)
    if kernel_tree is not None:
        tree = Path(kernel_tree).resolve()
        if not (tree / "Makefile").exists() or not (tree / "drivers" / "accel").is_dir():
            raise UmlError(f"--kernel-tree {tree} is not a kernel tree with drivers/accel")
        key_name = f"tree:{tree}"
    else:
        tree = source_tree(name, cache, progress)
        key_name = name
    version = tree_version(tree)
    slot = _slot(cache, key_name, tree, kasan)
    slot.mkdir(parents=True, exist_ok=True)
    log = slot / "build.log"
    log.write_text("")
    env = dict(os.environ)
    if kernel_tree is not None:
        # a developer's tree is built in place, as its owner builds it (an O= build would
        # need it clean, i.e. `make mrproper`, which is theirs to decide, not ours)
        objdir = tree
        make = ["make", "-C", str(tree), "ARCH=um"]
    else:
        objdir = slot / "build"
        objdir.mkdir(parents=True, exist_ok=True)
        make = ["make", "-C", str(tree), f"O={objdir}", "ARCH=um"]
    if shutil.which("ccache"):
        make.append("CC=ccache gcc")
        env.setdefault("CCACHE_DIR", str(cache / "ccache"))
    frag = fragment(kasan)
    t0 = time.monotonic()
    config = objdir / ".config"
    if kernel_tree is not None and config.exists():
        if "CONFIG_UML=y" not in config.read_text(errors="replace"):
            raise UmlError(
                f"{config} is not an ARCH=um configuration: configure the tree with "
                f"`make ARCH=um defconfig` (or give a clean worktree)"
            )
        _say(progress, f"configuring {version} from {config} + fragment")
    else:
        _say(progress, f"configuring {version} (ARCH=um defconfig + fragment)")
        _run([*make, "defconfig"], what="make defconfig", log=log, env=env)
    have = _options(config.read_text(errors="replace"))
    with open(config, "a") as fh:  # only what the configuration does not already say
        fh.write(
            "\n" + "".join(f"{k}={v}\n" for k, v in _options(frag).items() if have.get(k) != v)
        )
    _run([*make, "olddefconfig"], what="make olddefconfig", log=log, env=env)
    _check_config(config, _options(frag))
    jobs = jobs or os.cpu_count() or 1
    _say(progress, f"building {version} vmlinux with {jobs} jobs (about 13 minutes on 2 cores)")
    _run(
        [*make, f"-j{jobs}", "vmlinux"],
        what=f"building {version}",
        log=log,
        env=env,
        ticker=_ticker(t0) if sys.stderr.isatty() else None,
    )
    built = objdir / "vmlinux"
    if not built.exists():
        raise UmlError(f"the build of {version} finished without a vmlinux (log {log})")
    tmp = slot / "vmlinux.tmp"
    shutil.copy2(built, tmp)
    (slot / "meta.json").write_text(
        json.dumps(
            {
                "version": version,
                "name": name,
                "kasan": kasan,
                "tree": str(tree),
                "seconds": round(time.monotonic() - t0, 1),
            },
            indent=1,
        )
    )
    os.replace(tmp, slot / "vmlinux")
    _say(progress, f"built {version} in {time.monotonic() - t0:.0f} s")
    return Kernel(slot / "vmlinux", version, name, kasan, tree)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kernel",
        action="append",
        metavar="V[+kasan]",
        help=f"Debian kernel source package to build ({', '.join(sorted(KERNELS))}); "
        f"'V+kasan' builds its KASAN/lockdep variant; repeat for several "
        f"(default {DEFAULT_KERNEL})",
    )
    p.add_argument("--kasan", action="store_true", help="build with KASAN and lockdep")
    p.add_argument(
        "--kernel-tree",
        type=Path,
        default=None,
        help="build this kernel tree (configured or not) instead of a package",
    )
    p.add_argument("-j", "--jobs", type=int, default=None, help="make -j (default: all cores)")


def run_cli(args: argparse.Namespace) -> int:
    def progress(text: str) -> None:
        print(f"qaicmodel uml build: {text}", file=sys.stderr, flush=True)

    names = args.kernel or [DEFAULT_KERNEL]
    if args.kernel_tree is not None and len(names) > 1:
        raise ArgumentError("--kernel-tree builds one tree; give at most one --kernel")
    wanted = []
    for spec in names:
        name, plus, variant = spec.partition("+")
        if name not in KERNELS or (plus and variant != "kasan"):
            raise ArgumentError(
                f"--kernel {spec!r}: expected one of "
                f"{', '.join(sorted(KERNELS))}, optionally with '+kasan'"
            )
        wanted.append((name, args.kasan or bool(plus)))
    for name, kasan in wanted:
        k = build(
            name, kasan=kasan, kernel_tree=args.kernel_tree, jobs=args.jobs, progress=progress
        )
        print(k.path, flush=True)
    return 0
