"""Core features written as plugins, so plugin authors have worked examples."""
