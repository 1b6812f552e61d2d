"""lesionkit's helpers: everything the notebooks stand on, one module per stage.

- ``config``    presets -> one checked, frozen RunConfig (the only place for defaults)
- ``paths``     repository paths; paths shown without the machine's folders
- ``data``      find, check and decode image/mask pairs; a run's splits
- ``cache``     the decode cache: shards on disk, per-file reuse, rows read on demand
- ``batches``   uint8 arrays to normalised batches; paired augmentation
- ``synthetic`` SYNTHETIC lesions for tests and the demo
- ``weights``   the verified ImageNet MobileNetV2 weights, also offline
- ``model``     the MobileNetV2 U-Net of report A and parameter counts
- ``device``    choosing the device; autocast on GPU
- ``kernels``   the same CPU kernels (AVX2) on every x86-64 machine: the same bits
- ``train``     ``TrainConfig`` and ``fit``: per-epoch validation, history, checkpoints, resume
- ``runs``      run folders: data fingerprint, history repair, lock, named read errors
- ``metrics``   per-image IoU, Dice and friends (the ISIC conventions)
- ``evaluate``  test-set predictions, official ISIC scoring, paired model comparison
- ``predict``   ``python -m helpers.predict``: masks and overlays for your own images
- ``export``    ``python -m helpers.export``: a trained model as ONNX
- ``plots``     the notebooks' figures
- ``outputs``   figures and tables into the run's output folder; the reports' table shapes
- ``report``    ``python -m helpers.report``: run the notebooks, export the report
- ``colab``     the requirements Google Colab lacks
- ``atomic``    crash-safe file writes
"""

from helpers.kernels import cap_cpu_kernels

cap_cpu_kernels()  # before torch computes anything: see helpers/kernels.py
