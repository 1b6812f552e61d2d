"""lesionkit's helpers: everything the notebooks stand on, in layers.

Imports flow one way, from the bottom of this list to the top of it (tests/test_layers.py
checks that no import runs back up):

Settings and the machine
- ``errors``      ``LesionkitError`` and every error the kit raises on purpose
- ``paths``       repository paths; paths shown without the machine's folders; folder names
- ``system``      the machine: ``atomic`` (crash-safe writes; a full disk named),
                  ``writable`` (output paths checked before work), ``settings_file`` (a
                  preset's YAML, read bounded), ``cache`` (the decode cache),
                  ``cache_migration`` (removing caches in superseded formats),
                  ``device`` (device, autocast, the CPU's description), ``kernels`` (the
                  CPU's kind, the AVX2 cap on request), ``distributed`` (torchrun),
                  ``weights`` (verified ImageNet weights), ``colab`` (what Colab lacks)
- ``config``      presets -> one checked, frozen RunConfig with two TrainConfigs; no torch

Data (notebook 01)
- ``data``        find, check and decode image/mask pairs; SegmentationSet
- ``decode``      ``load_split``: a split's pairs decoded in parallel, into the disk cache
- ``synthetic``   SYNTHETIC lesions for tests and the demo
- ``isic2016``    the ISIC 2016 layout; a run's splits (``load_splits``); ``describe``
- ``batches``     uint8 arrays to normalised batches; paired augmentation

Model and training (notebooks 02 and 03)
- ``metrics``     per-image IoU, Dice and friends (the ISIC conventions)
- ``model``       the MobileNetV2 U-Net and its decoders; ``build_model``; parameter counts
- ``runs``        the one owner of a run folder: ``folder`` (files, lock, data fingerprint),
                  ``checkpoints`` (save, load, resume, repair), ``scoring`` (scoring.json)
- ``train``       loss, optimiser, schedule, one epoch, validation, ``fit``

Evaluation and figures (notebooks 04 and 05)
- ``evaluate``    test-set predictions, official ISIC scoring, paired model comparison
- ``predict``     masks and overlays for your own images
- ``zoomout``     zoomed-out copies of a test set (skin margin, dermatoscope ring)
- ``plots``       the notebooks' figures
- ``outputs``     figures and tables into the run's output folder

Commands and the report (``python -m helpers COMMAND``; ``__main__`` lists them)
- ``commands``    one module a command: ``train``, ``predict``, ``evaluate``, ``export``,
                  ``download``, ``zoomout``, ``robustness``, ``ablation``, ``weights``,
                  ``colab`` (the kit's public address: Colab badges, the set-up cell's
                  clone); ``cli`` prints the kit's errors as one line
- ``report``      ``python -m helpers.report``: ``notebooks`` (papermill), ``privacy`` (no
                  machine paths), ``html``, ``pdf``, ``make`` (title block, the command)

The instructor's side (``python -m helpers.assignment``), on top: nothing below imports it
- ``assignment``  ``markers`` (exercise regions, stubs), ``student`` (the student version),
                  ``sandbox`` (limits on a submission's processes), ``submissions``
                  (unpacking one), ``grade``, ``grades_table``, ``notebook_runner``
"""

from helpers.system.kernels import cap_cpu_kernels

cap_cpu_kernels()  # LESIONKIT_CPU_KERNELS=avx2, before torch computes: helpers/system/kernels.py
