"""lesionkit's helpers: everything the notebooks stand on, one module per concern.

- ``dataset``   find, check, decode and cache ISIC 2016 (or any) image/mask pairs
- ``batches``   uint8 arrays to normalised batches; paired augmentation
- ``synthetic`` SYNTHETIC lesions for tests and the demo
- ``weights``   the verified ImageNet MobileNetV2 weights, also offline
- ``model``     the MobileNetV2 U-Net of report A and parameter counts
- ``metrics``   per-image IoU, Dice and friends (the ISIC conventions)
- ``training``  ``fit`` with history, checkpoints and resume; ``predict``; ``evaluate``
- ``evaluate``  official ISIC scoring at full resolution; paired model comparison
- ``plots``     the notebooks' figures
- ``notebook``  the glue the notebooks call
- ``presets``   run presets and repository paths
- ``atomic``    crash-safe file writes
- ``pipeline``  ``python -m helpers.pipeline``: run the notebooks, export the report
- ``benchmark`` ``python -m helpers.benchmark``: speed against plain loops
"""
