"""The sync engine: runs connector plugins for a site.

- :mod:`.engine` pulls a connection's streams, storing records and cursors together;
- :mod:`.push` writes segment membership back through a connector;
- :mod:`.http` is the one HTTP client every connector shares;
- :mod:`.connections` stores connections (secrets encrypted) and finds connector classes;
- :mod:`.store` turns records into profiles, attributes, products, orders and engagement.
"""
