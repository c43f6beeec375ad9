"""Segments: rule trees evaluated per profile and in bulk, computed scores, contact policy."""
