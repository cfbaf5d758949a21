"""What stands for samples that are not there: SKIPPED, yielded in place of a sample
skipped for its missing objects, and MissingObject, raised when an object is found missing
as its sample is decoded."""


class MissingObject(FileNotFoundError):
    """A sample's object does not exist (raw objects read by byte range: found missing when
    the sample is decoded). Iterating with allow_missing skips the sample."""


class _Skipped:
    """Yielded in place of a sample skipped for its missing objects (raw objects with
    allow_missing) under a StreamingDataLoader, so that batches keep their positions in the
    epoch (resume counts them); the loader's collate drops it."""

    def __reduce__(self):
        return "SKIPPED"

    def __repr__(self):
        return "chute.SKIPPED"


SKIPPED = _Skipped()
