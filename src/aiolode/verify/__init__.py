"""Integrity check (``fsck``) of a dataset or a volume, straight from the stored format.

:func:`verify_dataset` and :func:`verify_volume` read what is on storage the way
a stranger would: they list the dataset's (volume's) prefix once, decode every
document (descriptor, commit record, partition manifest; volume root, index
segment, segment list) strictly, check that the history is one linear chain,
and fetch every object the snapshots in range reference to compare its size
and digest with what the record says. They *report* what they find
(:class:`VerifyReport`) instead of raising on the first problem, and list
unreferenced objects (orphans of aborted or in-flight writes) without deleting
anything.

They deliberately do not go through the Dataset/Volume read path, nor through
the history layer both are built on: a check that trusts the code it checks
proves little. Layer L3 (see ``aiolode/__init__.py``): this package imports the
documented formats (the manifest models, the one converter, ``manifest._ids``),
the codec/compressor/checksum registries, layouts and stores — never
``aiolode.dataset``, ``aiolode.volume``, ``aiolode.reader`` or ``aiolode._history``.
"""

from __future__ import annotations

from ._dataset import verify_dataset as verify_dataset
from ._report import Problem as Problem
from ._report import ProblemKind as ProblemKind
from ._report import VerifyReport as VerifyReport
from ._volume import verify_volume as verify_volume

__all__ = ("Problem", "ProblemKind", "VerifyReport", "verify_dataset", "verify_volume")
