"""The instructor's side (``python -m helpers.assignment``), on top of every other layer.

- ``markers``          the solution and answer regions; stubs; the solution code's fingerprint
- ``student``          ``student --out DIR``: the student version and its ASSIGNMENT.md
- ``sandbox``          a command run in its own process group under time, CPU, memory,
                       file-size and process-count limits
- ``submissions``      unpacking one submission (a folder or a bounded zip) to a temporary folder
- ``grade``            ``grade SUBMISSIONS --out DIR``: checks and notebooks per submission
- ``grades_table``     ``grades.csv`` and ``grades.html``
- ``notebook_runner``  run in the submission's process: its notebooks through papermill
"""
