"""Live updates: `GET /api/events` streams projected TripViews to the members of each trip.

- `hub`: one per API process. It waits on the projection's NOTIFY (the process's
  `queries.consistency` listener), reads the changed documents and removals ONCE per wake-up with
  one statement, and routes them in memory to the subscribers whose user is a member.
- `frames`: server-sent-event frames and a subscriber's bounded, coalescing queue.
- `routes`: the endpoint; a reconnect with `Last-Event-ID` replays what was missed in one
  statement as the caller (`tripsage.live_replay`, migration 0009).
- `metrics`: subscribers, events sent, coalesced, resets, delivery latency on `/metrics`.
"""
