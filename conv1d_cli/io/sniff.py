"""What a file is, told from its first bytes: audio containers and layer archives.

- :func:`is_layer_archive` -- a path read as a layer file (``.npz``, a zip, a pickle)
- :func:`is_pickle` / :func:`starts_like_layer` -- the layer-archive magics
- :func:`sniff_container` -- the container a stream announces (``RIFF``, ``fLaC``, ...)

No NumPy or soundfile here: ``conv1d shape`` and the CLI's argument checks use it
before anything heavy is loaded.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

__all__ = [
    "LAYER_MAGICS",
    "SNIFF_BYTES",
    "is_layer_archive",
    "is_pickle",
    "sniff_container",
    "starts_like_layer",
]

# What a pipe holds is told from its first bytes, never from --input-format or the name:
# libsndfile decodes whatever container it finds there. (prefix, bytes 8-12 or b"", name)
_MAGIC: Final = (
    (b"RIFF", b"WAVE", "wav"),
    (b"RIFX", b"WAVE", "wav"),  # big-endian WAV
    (b"RF64", b"WAVE", "rf64"),
    (b"BW64", b"WAVE", "rf64"),  # EBU Tech 3285 broadcast WAV over 4 GB
    (b"riff\x2e\x91\xcf\x11", b"", "w64"),  # the first 8 bytes of W64's RIFF GUID
    (b"FORM", b"AIFF", "aiff"),
    (b"FORM", b"AIFC", "aiff"),
    (b"FORM", b"8SVX", "svx"),
    (b"FORM", b"16SV", "svx"),
    (b".snd", b"", "au"),
    (b"dns.", b"", "au"),  # little-endian AU
    (b"OggS", b"", "ogg"),
    (b"fLaC", b"", "flac"),
    (b"caff", b"", "caf"),
    (b"\x93NUMPY", b"", "npy"),
)
SNIFF_BYTES: Final = 12  # enough for every prefix and tag above


def sniff_container(head: bytes) -> str | None:
    """The container the first bytes of a stream announce (lower case), or None.

    Examples
    --------
    >>> sniff_container(b"RF64sizeWAVE"), sniff_container(b"fLaC")
    ('rf64', 'flac')
    >>> sniff_container(b"1.5,2;3,4") is None
    True
    """
    for prefix, tag, name in _MAGIC:
        if head.startswith(prefix) and (not tag or head[8:12] == tag):
            return name
    return None


#: How the archives a layer may come in start: zip (npz), .npy, pickle protocol 2-5.
LAYER_MAGICS: Final = (
    b"PK\x03\x04",
    b"\x93NUM",
    b"\x80\x02",
    b"\x80\x03",
    b"\x80\x04",
    b"\x80\x05",
)


def is_pickle(head: bytes) -> bool:
    """Whether ``head`` starts a Python pickle of protocol 2-5 (an old ``torch.save``).

    Those protocols start with PROTO (0x80) and the protocol number.

    Examples
    --------
    >>> is_pickle(b"\\x80\\x02}q"), is_pickle(b"PK\\x03\\x04"), is_pickle(b"\\x80\\x01")
    (True, False, False)
    """
    return head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")


def starts_like_layer(head: bytes) -> bool:
    """Whether the first bytes ``head`` may start a layer archive (:data:`LAYER_MAGICS`).

    Examples
    --------
    >>> starts_like_layer(b"PK\\x03\\x04"), starts_like_layer(b"\\x80\\x04\\x95")
    (True, True)
    >>> starts_like_layer(b"1,2;3")
    False
    """
    return head.startswith(LAYER_MAGICS) or head[:2] in LAYER_MAGICS


def is_layer_archive(path: str) -> bool:
    """Whether ``path`` is read as a layer archive rather than a signal or a ``.npy``.

    True for the ``.npz``, ``.pt`` and ``.pth`` extensions and, whatever the name,
    for a zip archive or a Python pickle (an old-style ``torch.save`` file): the
    layer reader then explains what a PyTorch file is and how to export it, instead
    of a signal reader complaining about an unknown format.

    Examples
    --------
    >>> is_layer_archive("model.npz"), is_layer_archive("-"), is_layer_archive("no-such.wav")
    (True, False, False)
    """
    if path == "-":
        return False
    if Path(path).suffix.lower() in (".npz", ".pt", ".pth"):
        return True
    try:
        # Sniffing a pipe (<(...), a FIFO) would eat its first bytes: streams are not sniffed.
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head == b"PK\x03\x04" or is_pickle(head)
