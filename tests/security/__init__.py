"""Trust: fuzzing, faults, abuse limits, isolation and privacy."""
