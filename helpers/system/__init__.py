"""The machine under the kit: crash-safe writes (``atomic``), output paths checked before
any work (``writable``), a preset's YAML read safely (``settings_file``), the decode cache
(``cache``, ``cache_migration``), the device and mixed precision (``device``), the CPU's kind and
kernels (``kernels``), torchrun (``distributed``), the verified ImageNet weights (``weights``) and
what Google Colab lacks (``colab``). Nothing here imports the rest of the kit."""
