"""The region agent: probes a region's runs (queue probes.<region>) and sends the results home over the broker.

No Django and no database: an agent needs only the broker, its region's name and its region's key. The same
probe task also runs inside a Django worker of that region (`lookout worker --region NAME`), configured by the
home side through lookout.agent.context.
"""
