"""The kit's command-line programs, one module each, run as ``python -m helpers NAME``
(:mod:`helpers.__main__` lists them). Each builds its parser and hands its work to
:func:`helpers.commands.cli.run_command`, which prints the kit's own errors as one line."""
