"""Plain frozen data, no I/O: the vocabulary every other package speaks."""
