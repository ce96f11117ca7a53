"""annkit: approximate-nearest-neighbour recall toolkit."""

__version__ = "0.1.0"
