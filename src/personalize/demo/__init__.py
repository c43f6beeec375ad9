"""The demo shop: a generated catalogue and visitor history, and a small shop that embeds the widget.

``personalize demo`` calls :func:`personalize.demo.setup.build_demo` to load it all
into a demo site and serves :data:`personalize.demo.views.bp` at ``/``.
"""
