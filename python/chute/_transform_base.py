"""What every chute transform is (see chute.transforms): the Transform protocol, Compose,
KeepFields (which Compose needs to know), and the helpers the steps share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class TransformError(ValueError):
    """A sample's field could not be decoded (the message names the field and why)."""


class Transform:
    """A step on a sample dict. ``apply(sample, rng, out)`` does the work: ``rng`` is the
    sample's generator (see the module docstring) and ``out`` a writable array for the
    field whose shape :meth:`fixed_output` announced, or None. Calling a transform directly
    uses a generator seeded with 0."""

    def apply(self, sample: dict, rng: np.random.Generator, out=None) -> dict:
        raise NotImplementedError

    def fixed_output(self):
        """(field, shape, numpy dtype) of the field this step outputs when every sample
        gives the same shape, else None."""
        return None

    @property
    def runs_python(self) -> bool:
        """Whether a step is a user's Python function (which holds the GIL: worker
        processes, not threads, run it in parallel)."""
        return False

    def ranged_fields(self) -> tuple:
        """Fields this step reads as seekable files when a raw dataset gives it one (only
        the parts it reads are fetched) instead of bytes."""
        return ()

    def __call__(self, sample: dict) -> dict:
        return self.apply(sample, np.random.default_rng(0))


class PythonStep(Transform):
    """A user's function on the sample dict, as a step of a Compose."""

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"{fn!r} is neither a chute.transforms transform nor a function of a sample")
        self.fn = fn

    @property
    def runs_python(self) -> bool:
        return True

    def apply(self, sample, rng, out=None):
        return self.fn(sample)


class Compose(Transform):
    """Transforms applied in turn; a step that is not a chute transform is a function of
    the sample (see PythonStep)."""

    def __init__(self, transforms: Sequence):
        steps = [s if isinstance(s, Transform) else PythonStep(s) for s in transforms]
        self.transforms = [t for step in steps for t in (step.transforms if isinstance(step, Compose) else [step])]

    @property
    def runs_python(self) -> bool:
        return any(t.runs_python for t in self.transforms)

    def ranged_fields(self) -> tuple:
        """Those of the steps that no earlier step but KeepFields sees."""
        fields = []
        for t in self.transforms:
            fields += t.ranged_fields()
            if not isinstance(t, KeepFields):
                break
        return tuple(fields)

    def apply(self, sample, rng, out=None):
        last = self._last_fixed()
        for k, t in enumerate(self.transforms):
            sample = t.apply(sample, rng, out if k == last else None)
        return sample

    def _last_fixed(self):
        """The index of the step whose fixed output the batch holds (the last step that
        produces that field, and nothing after it touches it), or None."""
        for k in range(len(self.transforms) - 1, -1, -1):
            fixed = self.transforms[k].fixed_output()
            if fixed is not None:
                field = fixed[0]
                later = self.transforms[k + 1:]
                if all(isinstance(t, KeepFields) and field in t.fields for t in later):
                    return k
                return None
        return None

    def fixed_output(self):
        k = self._last_fixed()
        return None if k is None else self.transforms[k].fixed_output()


def as_transform(transform) -> Transform | None:
    """`transform` as one chute Transform when it is one or a list of steps (chute
    transforms and functions of a sample), else None (a user's function alone)."""
    if isinstance(transform, Transform):
        return transform
    if isinstance(transform, (list, tuple)):
        if not transform:
            raise ValueError("transform=[]: give None for no transform")
        return Compose(transform)
    return None


def _field(sample, field, who):
    try:
        return sample[field]
    except KeyError:
        raise TransformError(f"{who}: the sample has no field {field!r} (its fields: {sorted(sample)})") from None


def _into(out, array):
    """`array`, copied into `out` (its row of a batch tensor) when there is one."""
    if out is None:
        return array
    np.copyto(out, array)
    return out


def _pair(size, what):
    if size is None:
        return None
    def positive(s):
        return isinstance(s, int) and not isinstance(s, bool) and s > 0

    if positive(size):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(positive(s) for s in size):
        return tuple(size)
    raise ValueError(f"{what}={size!r}: use a positive int or (height, width)")


class KeepFields(Transform):
    """Only these fields."""

    def __init__(self, fields: Sequence[str]):
        self.fields = list(fields)

    def apply(self, sample, rng, out=None):
        return {f: _field(sample, f, "KeepFields") for f in self.fields}
