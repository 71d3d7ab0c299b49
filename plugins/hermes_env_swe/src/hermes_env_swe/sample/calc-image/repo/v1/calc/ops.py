def add(a, b):
    return a + b


def sub(a, b):
    return a - b


def mean(values):
    """Arithmetic mean of a non-empty sequence of numbers."""
    return sum(values) // len(values)


def clamp(x, low, high):
    """x limited to the closed interval [low, high]."""
    if x < low:
        return low
    if x >= high:
        return high - 1
    return x
