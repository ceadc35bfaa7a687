"""aiolode: async-native object storage with database discipline.

Immutable snapshots, explicit metadata, manifests as the commit signal, safe
concurrent writers without locks, and sparse byte-range volumes, on asyncio and
trio, over memory, the local filesystem and S3-compatible storage.
"""

from __future__ import annotations

from ._retry import Retry as Retry
from .checksum import CRC32 as CRC32
from .checksum import CRC32C as CRC32C
from .checksum import MD5 as MD5
from .checksum import SHA256 as SHA256
from .checksum import XXH3 as XXH3
from .checksum import Blake2b as Blake2b
from .checksum import Blake3 as Blake3
from .checksum import Checksum as Checksum
from .codecs import JSONL as JSONL
from .codecs import ArrowIPC as ArrowIPC
from .codecs import Codec as Codec
from .codecs import Parquet as Parquet
from .compression import Compressor as Compressor
from .compression import Gzip as Gzip
from .compression import Zstd as Zstd
from .dataset import Blob as Blob
from .dataset import BlobWriter as BlobWriter
from .dataset import Dataset as Dataset
from .dataset import DropReport as DropReport
from .dataset import ExpireReport as ExpireReport
from .dataset import GCReport as GCReport
from .dataset import Snapshot as Snapshot
from .errors import AiolodeError as AiolodeError
from .errors import ChecksumMismatchError as ChecksumMismatchError
from .errors import CodecNotStreamableError as CodecNotStreamableError
from .errors import ConfigMismatchError as ConfigMismatchError
from .errors import ConflictError as ConflictError
from .errors import CorruptDataError as CorruptDataError
from .errors import DatasetNotFoundError as DatasetNotFoundError
from .errors import DatasetsNotModeledError as DatasetsNotModeledError
from .errors import FormatError as FormatError
from .errors import HistoryGapError as HistoryGapError
from .errors import InvalidInputError as InvalidInputError
from .errors import InvalidKeyError as InvalidKeyError
from .errors import InvalidRangeError as InvalidRangeError
from .errors import ManifestFormatError as ManifestFormatError
from .errors import MissingDependencyError as MissingDependencyError
from .errors import NoSnapshotsError as NoSnapshotsError
from .errors import NotFoundError as NotFoundError
from .errors import ObjectExistsError as ObjectExistsError
from .errors import ObjectNotFoundError as ObjectNotFoundError
from .errors import OverlappingBlocksError as OverlappingBlocksError
from .errors import PartitioningNotSupportedError as PartitioningNotSupportedError
from .errors import PermissionDeniedError as PermissionDeniedError
from .errors import PreconditionFailedError as PreconditionFailedError
from .errors import RangeMissingError as RangeMissingError
from .errors import SchemaViolationError as SchemaViolationError
from .errors import SnapshotConflictError as SnapshotConflictError
from .errors import SnapshotExpiredError as SnapshotExpiredError
from .errors import SnapshotNotFoundError as SnapshotNotFoundError
from .errors import StaleWriteError as StaleWriteError
from .errors import StorageError as StorageError
from .errors import TransientStorageError as TransientStorageError
from .errors import UnsupportedError as UnsupportedError
from .errors import UnsupportedFormatVersionError as UnsupportedFormatVersionError
from .errors import UnsupportedOperationError as UnsupportedOperationError
from .errors import VolumeNotFoundError as VolumeNotFoundError
from .layout import DefaultLayout as DefaultLayout
from .layout import FlatLayout as FlatLayout
from .layout import HiveLayout as HiveLayout
from .layout import Layout as Layout
from .layout import TemplateLayout as TemplateLayout
from .manifest import FileRef as FileRef
from .manifest import Manifest as Manifest
from .reader import DataFile as DataFile
from .reader import DatasetReader as DatasetReader
from .schema import Field as Field
from .schema import Schema as Schema
from .store import FileStore as FileStore
from .store import GCSStore as GCSStore
from .store import MemoryStore as MemoryStore
from .store import S3Store as S3Store
from .store import Store as Store
from .store import open_store as open_store
from .types import IfMatch as IfMatch
from .types import ObjectInfo as ObjectInfo
from .types import PutMode as PutMode
from .verify import Problem as Problem
from .verify import ProblemKind as ProblemKind
from .verify import VerifyReport as VerifyReport
from .verify import verify_dataset as verify_dataset
from .verify import verify_volume as verify_volume
from .volume import BlockRef as BlockRef
from .volume import Volume as Volume
from .volume import VolumeReader as VolumeReader
from .volume import VolumeSnapshot as VolumeSnapshot

__version__ = "0.1.0"

__all__ = (
    "CRC32",
    "CRC32C",
    "JSONL",
    "MD5",
    "SHA256",
    "XXH3",
    "AiolodeError",
    "ArrowIPC",
    "Blake2b",
    "Blake3",
    "Blob",
    "BlobWriter",
    "BlockRef",
    "Checksum",
    "ChecksumMismatchError",
    "Codec",
    "CodecNotStreamableError",
    "Compressor",
    "ConfigMismatchError",
    "ConflictError",
    "CorruptDataError",
    "DataFile",
    "Dataset",
    "DatasetNotFoundError",
    "DatasetReader",
    "DatasetsNotModeledError",
    "DefaultLayout",
    "DropReport",
    "ExpireReport",
    "Field",
    "FileRef",
    "FileStore",
    "FlatLayout",
    "FormatError",
    "GCReport",
    "GCSStore",
    "Gzip",
    "HistoryGapError",
    "HiveLayout",
    "IfMatch",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidRangeError",
    "Layout",
    "Manifest",
    "ManifestFormatError",
    "MemoryStore",
    "MissingDependencyError",
    "NoSnapshotsError",
    "NotFoundError",
    "ObjectExistsError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "OverlappingBlocksError",
    "Parquet",
    "PartitioningNotSupportedError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "Problem",
    "ProblemKind",
    "PutMode",
    "RangeMissingError",
    "Retry",
    "S3Store",
    "Schema",
    "SchemaViolationError",
    "Snapshot",
    "SnapshotConflictError",
    "SnapshotExpiredError",
    "SnapshotNotFoundError",
    "StaleWriteError",
    "StorageError",
    "Store",
    "TemplateLayout",
    "TransientStorageError",
    "UnsupportedError",
    "UnsupportedFormatVersionError",
    "UnsupportedOperationError",
    "VerifyReport",
    "Volume",
    "VolumeNotFoundError",
    "VolumeReader",
    "VolumeSnapshot",
    "Zstd",
    "__version__",
    "open_store",
    "verify_dataset",
    "verify_volume",
)
