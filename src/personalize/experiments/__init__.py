"""Experiments: A/B/n tests of a page slot between strategies, rule sets, blend weights or model
versions, with always-valid per-arm figures and a winner roll-out.

* :mod:`.arms` — what an arm changes (a small declarative override), which arm a visitor is in
  (a hash of site, experiment and visitor), and the rec_id tag that carries the arm.
* :mod:`.store` — create, start, stop and roll out; the running ones are mirrored into the site's
  settings so serving a list costs no extra query.
* :mod:`.report` — per-arm figures from the events, with the intervals of
  :mod:`personalize.insights.experiments`.
"""
