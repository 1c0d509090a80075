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
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?![\w])|\b(?:nan|inf)\b")


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


def _strings(output):
    """(container, key) of every string of an output that nbval compares, in a set order."""
    if output.get("output_type") == "stream":
        yield output, "text"
    data = output.get("data", {})
    for key in sorted(data):
        if isinstance(data[key], str):
            yield data, key


def _compare_outputs(self, test, ref, skip_compare=None):
    """Where a computed string agrees with its committed counterpart to the tolerance, nbval is
    handed the committed string; anything else goes to nbval as computed, and fails there with
    nbval's own report."""
    for computed, committed in zip(test, ref):
        if (computed.get("output_type"), computed.get("name")) != (committed.get("output_type"), committed.get("name")):
            continue
        for (container, key), (reference, reference_key) in zip(_strings(computed), _strings(committed)):
            if key == reference_key and numbers_agree(self.sanitize(reference[key]), self.sanitize(container[key])):
                container[key] = reference[key]
    return _nbval_compare_outputs(self, test, ref, skip_compare)


_nbval_compare_outputs = IPyNbCell.compare_outputs
IPyNbCell.compare_outputs = _compare_outputs
