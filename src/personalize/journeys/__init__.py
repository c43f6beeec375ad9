"""Journeys: act on each person across channels, step by step (docs/journeys.md).

A journey has a trigger, steps (waits, waits for an event, branches on the segment rule
language, random splits, and actions: email, signed webhooks, connector actions, profile
attributes), exit rules, a goal and a control group. People enter through the
notifications of the lower layers (:mod:`.listener`), on dates and through the API
(:mod:`.triggers`); each step's state is a row with a due time that runners claim in
batches and run exactly once (:mod:`.runner`, :mod:`.actions`); :mod:`.report` measures
what a journey earns against its control group. Nothing below this package imports it.
"""
