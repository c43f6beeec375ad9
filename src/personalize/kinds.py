"""Interaction kinds, weakest signal first: what profiles store, segments count and models learn from.

A ground-floor module (no imports), so every layer can name them.
"""

VIEW, CART, PURCHASE = 1, 2, 3
KIND_NAMES = {VIEW: "viewed", CART: "added to cart", PURCHASE: "bought"}
