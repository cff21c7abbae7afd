"""Reading and writing files: signals, layers, pipes, atomic outputs.

One concern per module:

- :mod:`~conv1d_cli.io.formats` -- format names and tables, :func:`detect_format`,
  the audio subtype an output gets, :class:`SignalInfo`
- :mod:`~conv1d_cli.io.pipes` -- stdin/stdout, FIFOs and ``<(...)``: what is a
  stream, bounded buffering, the relay that feeds libsndfile, copying a spool out
- :mod:`~conv1d_cli.io.sniff` -- what a file is from its first bytes (audio
  containers, layer archives); no NumPy
- :mod:`~conv1d_cli.io.base` -- the :class:`SignalReader` / :class:`SignalWriter`
  contract every format implements (atomic publishing, spooling, live pipes)
- :mod:`~conv1d_cli.io.audiofile` -- audio through soundfile: reader, writer,
  PCM rounding and clipping, WAV/AU headers written to a pipe
- :mod:`~conv1d_cli.io.csvfile` -- CSV: dialect sniffing, columns, time column, writer
- :mod:`~conv1d_cli.io.npyfile` -- NPY: headers (checked on pipes), reader, writers
- :mod:`~conv1d_cli.io.inputs` -- :func:`open_reader`, :func:`probe`, :func:`read_signal`
- :mod:`~conv1d_cli.io.outputs` -- :func:`plan_output` (an output's format, subtype,
  rate and columns), :func:`open_writer`, :func:`write_signal`
- :mod:`~conv1d_cli.io.layerfile` -- layer ``.npz`` files: :func:`save_layer`, :func:`load_layer`
- :mod:`~conv1d_cli.io.coefficients` -- coefficient files and ``.npy`` kernels
- :mod:`~conv1d_cli.io.atomic` -- :func:`atomic_path`: an output appears whole or not at all

This package imports nothing itself: the CLI imports from it at start-up, and
NumPy and soundfile load only with the module that needs them.
"""
