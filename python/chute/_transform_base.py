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

    def __call__(self, sample: dict) -> dict:
        return self.apply(sample, np.random.default_rng(0))


class Compose(Transform):
    """Transforms applied in turn."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = [t for step in transforms for t in (step.transforms if isinstance(step, Compose) else [step])]
        for t in self.transforms:
            if not isinstance(t, Transform):
                raise TypeError(f"{t!r} is not a chute.transforms transform: wrap your own steps in a function and "
                                "give that as the dataset's transform")

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
    """`transform` as one chute Transform if it is made only of them (a list or a
    Compose), else None (a user's function)."""
    if isinstance(transform, Transform):
        return transform
    if isinstance(transform, (list, tuple)) and transform and all(isinstance(t, Transform) for t in transform):
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
