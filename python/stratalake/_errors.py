"""Exception classes. Every error the engine reports is a :class:`StrataLakeError`;
the subclass says what went wrong, and the message says what to do about it."""
from __future__ import annotations


class StrataLakeError(Exception):
    """Base class of every StrataLake error."""


class TableNotFoundError(StrataLakeError):
    """There is no Delta table (no ``_delta_log`` with commits) at the path."""


class TableAlreadyExistsError(StrataLakeError):
    """``mode="error"`` on a path that already holds a table."""


class CommitConflictError(StrataLakeError):
    """A concurrent commit conflicts with this one; nothing was written. Retry the operation."""


class ConcurrentAppendError(CommitConflictError):
    """A concurrent commit added files that this commit read."""


class ConcurrentDeleteReadError(CommitConflictError):
    """A concurrent commit removed files that this commit read."""


class ConcurrentDeleteDeleteError(CommitConflictError):
    """A concurrent commit removed files that this commit removes too."""


class MetadataChangedError(CommitConflictError):
    """A concurrent commit changed the table's metadata (schema, properties)."""


class ProtocolChangedError(CommitConflictError):
    """A concurrent commit changed the table's protocol."""


class ConcurrentTransactionError(CommitConflictError):
    """A concurrent commit used the same application id."""


class SchemaMismatchError(StrataLakeError):
    """Data does not fit the table's or the definition's schema (a column missing, a type)."""


class ConstraintViolationError(StrataLakeError):
    """A CHECK constraint, an invariant or NOT NULL was violated; nothing was written."""


class VersionNotFoundError(StrataLakeError):
    """Time travel to a version or time the table's log does not have (or no longer has)."""


class DataFileNotFoundError(StrataLakeError, FileNotFoundError):
    """A file is missing: a data file named by the log (removed outside of VACUUM?) or
    an input file given to ``ingest``. Also a ``FileNotFoundError``."""


class CorruptLogError(StrataLakeError):
    """A log or checkpoint file is malformed, missing or inconsistent."""


class UnsupportedFeatureError(StrataLakeError):
    """The table (or the request) needs a feature StrataLake does not implement yet."""


class OperationNotAllowedError(StrataLakeError):
    """E.g. a delete on an append-only table, or VACUUM below the retention period."""


class DefinitionError(StrataLakeError):
    """A feature-repository definition, a configuration value or an argument is invalid."""


class IncompatibleChangeError(DefinitionError):
    """A registry change breaks the project's compatibility policy; nothing was applied."""


class RegistryConflictError(StrataLakeError):
    """Another process changed the registry first; review its change and apply again."""


class ObjectNotFoundError(StrataLakeError):
    """No entity, source, feature view, feature service or saved dataset of that name."""


class FeatureNotFoundError(ObjectNotFoundError):
    """An unknown feature view, feature or feature service was requested."""


class DataRejectedError(StrataLakeError):
    """Ingested or pushed rows failed type conversion or the declared checks."""


class OnlineStoreLockedError(StrataLakeError):
    """The embedded online store (RocksDB) is open in another process (a running
    ``stratalake serve``, another notebook); the message names the process when it can be
    told. FeatureStore objects of one process share the store, so this is never raised
    between them. Close it there, or send writes to the server (``POST /materialize``,
    ``/push``)."""


_BY_KIND = {
    "TableNotFound": TableNotFoundError,
    "TableAlreadyExists": TableAlreadyExistsError,
    "CorruptLog": CorruptLogError,
    "UnsupportedFeature": UnsupportedFeatureError,
    "SchemaMismatch": SchemaMismatchError,
    "ConstraintViolation": ConstraintViolationError,
    "ConcurrentAppend": ConcurrentAppendError,
    "ConcurrentDeleteRead": ConcurrentDeleteReadError,
    "ConcurrentDeleteDelete": ConcurrentDeleteDeleteError,
    "MetadataChanged": MetadataChangedError,
    "ProtocolChanged": ProtocolChangedError,
    "ConcurrentTransaction": ConcurrentTransactionError,
    "VersionNotFound": VersionNotFoundError,
    "FileNotFound": DataFileNotFoundError,
    "OperationNotAllowed": OperationNotAllowedError,
    "DefinitionError": DefinitionError,
    "IncompatibleChange": IncompatibleChangeError,
    "RegistryConflict": RegistryConflictError,
    "ObjectNotFound": ObjectNotFoundError,
    "FeatureNotFound": FeatureNotFoundError,
    "DataRejected": DataRejectedError,
    "OnlineStoreLocked": OnlineStoreLockedError,
}


class StrataLakeWarning(UserWarning):
    """A result that is complete but probably not what was wanted, because the data behind
    it is missing: a feature view's source was never ingested or is empty, every feature of a
    training set came back null, or nothing was materialized for an online read. The message
    says what to run (``store.ingest(...)``, ``store.materialize(...)``)."""


def class_for(kind: str, code: str) -> type[BaseException]:
    """The exception class for an engine error (used by the C++ extension)."""
    if kind in _BY_KIND:
        return _BY_KIND[kind]
    if code == "Cancelled":
        return KeyboardInterrupt
    return StrataLakeError


__all__ = [name for name, obj in globals().items()
           if isinstance(obj, type) and issubclass(obj, (StrataLakeError, StrataLakeWarning))]
