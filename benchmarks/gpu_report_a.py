"""Report A's whole run (both models, 50 epochs each) on the GPU, timed; writes gpu.json.

    python benchmarks/gpu_report_a.py DATA_ROOT RUN_FOLDER   # $OUT/gpu.json

As it was run on the lent H100 (docs/speed.md): the repository root on PYTHONPATH, the
ImageNet weights carried in TORCH_HOME, the data root a copy of the shared ISIC 2016 rebuild.
"""
import json
import os
import platform
import sys
import time

import torch

began = time.perf_counter()
from helpers.config import load_config  # noqa: E402
from helpers.isic2016 import load_splits  # noqa: E402
from helpers.model import build_model  # noqa: E402
from helpers.train import fit  # noqa: E402

config = load_config("report_a", data_root=sys.argv[1], output_dir=sys.argv[2])
loaded = time.perf_counter()
splits = load_splits(config, progress=False)
decoded = time.perf_counter()
result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
          "cuda": torch.version.cuda, "python": platform.python_version(),
          "data": "shared ISIC 2016 rebuild, JPEGs re-saved at 256x256 to fit the transfer limit",
          "images": {"train": len(splits.train), "test": len(splits.test)},
          "image_size": config.image_size, "decode_s": decoded - loaded, "models": {}}
for name in ("frozen", "fine_tuned"):
    train = config.model(name)
    torch.cuda.synchronize()
    t = time.perf_counter()
    history = fit(build_model(train), splits.train, splits.val, train, config.run_dir(name),
                  progress=False)
    torch.cuda.synchronize()
    result["models"][name] = {"seconds": time.perf_counter() - t, "epochs": len(history),
                              "median_epoch_s": float(history["seconds"].median()),
                              "first_epoch_s": float(history["seconds"].iloc[0]),
                              "best_val_dice": float(history["val_dice"].max()),
                              "last_train_loss": float(history["train_loss"].iloc[-1])}
    print(name, result["models"][name], flush=True)
result["whole_run_s"] = time.perf_counter() - began
print(json.dumps(result, indent=2))
open(os.path.join(os.environ["OUT"], "gpu.json"), "w").write(json.dumps(result, indent=2) + "\n")
