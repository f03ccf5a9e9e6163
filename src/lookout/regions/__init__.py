"""Regions: probing each monitor from several places and deciding up, degraded or down from their agreement.

Dispatch per region is the scheduler's (lookout.scheduling.regional); probing in another region is the agent's
(lookout.agent); here is what the home region decides from their results: rounds and votes (agreement), which
regions are suspect (suspects), and what the API shows of them (selectors).
"""
