"""The routing benchmark (docs/architecture.md, "Numbers it is held to"): seeded month workloads, per-offer
truth models, a discrete-event simulator that runs the real policy engine on a virtual clock, baseline policies, an
offline-optimal cost bound and the comparison report behind `hvr simulate`.

Nothing here is imported by the Lambda paths; scipy and matplotlib are imported only by `optimal` and the chart.
"""
