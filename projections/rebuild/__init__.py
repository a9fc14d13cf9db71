"""Online rebuild of a projection: shadow tables, backfill, catch-up, switch, rollback and verify.

`run` drives a rebuild (`rebuild`), `shadow` makes the shadow copies, `switch` swaps them in,
`rollback` brings the previous tables back (and rebuilds one trip), `state`/`status` record and
report runs, `lock` serialises rebuilds, `options` holds their knobs, `verify` compares the live read
model with a fresh build.
"""
