"""A pytest plugin for nbval (`-p nbval_tolerance`): a cell's output matches the committed one
when its text is the same and its numbers agree to a stated tolerance, since the last digits of
a loss or a mask statistic depend on the processor's kernels (AVX-512 and AMX round differently).

Numbers with a fractional part agree within RELATIVE of the larger or within ABSOLUTE; integers
(counts, epochs, image sizes) must be equal. Everything else, text, structure and the number of
outputs, is nbval's own comparison, after the sanitize file's replacements.
"""

import math
import re

from nbval.plugin import IPyNbCell

RELATIVE = 0.02
ABSOLUTE = 0.005
# A number stands alone: not inside a word like a56 or seed2 (an underscore may border it: the
# sanitize file turns runs of spaces into one).
NUMBER = re.compile(
    r"(?<![A-Za-z0-9.])[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z0-9])"
    r"|(?<![A-Za-z])(?:nan|inf)(?![A-Za-z])"
)


def numbers_agree(reference, computed):
    """Whether two strings are the same text with numbers that agree to the tolerance."""
    if NUMBER.sub("#", reference) != NUMBER.sub("#", computed):
        return False
    pairs = zip(NUMBER.findall(reference), NUMBER.findall(computed))
    return all(_agree(left, right) for left, right in pairs)


def _agree(left, right):
    if left == right:
        return True
    if not any(mark in left + right for mark in ".eE") or "nan" in (left, right):
        return False  # integers, and nan against a number, must match exactly
    a, b = float(left.replace(",", "")), float(right.replace(",", ""))
    return math.isclose(a, b, rel_tol=RELATIVE, abs_tol=ABSOLUTE)


def _strings(outputs):
    """{key: [(container, field), ...]} of every string nbval compares, keyed and ordered as nbval
    pairs them: a stream by its name (stdout, stderr), other outputs by MIME type."""
    keyed = {}
    for output in outputs:
        if output.get("output_type") == "stream":
            keyed.setdefault(output.get("name"), []).append((output, "text"))
        for key, value in output.get("data", {}).items():
            if isinstance(value, str):
                keyed.setdefault(key, []).append((output["data"], key))
    return keyed


def _compare_outputs(self, test, ref, skip_compare=None):
    """Where a computed string agrees with its committed counterpart to the tolerance, nbval is
    handed the committed string; anything else goes to nbval as computed, and fails there with
    nbval's own report."""
    committed = _strings(ref)
    for key, computed in _strings(test).items():
        for (container, field), (reference, reference_field) in zip(computed, committed.get(key, [])):
            if numbers_agree(self.sanitize(reference[reference_field]), self.sanitize(container[field])):
                container[field] = reference[reference_field]
    return _nbval_compare_outputs(self, test, ref, skip_compare)


_nbval_compare_outputs = IPyNbCell.compare_outputs
IPyNbCell.compare_outputs = _compare_outputs
