"""The domain: jobs, events, per-frame data, errors and the stage table. It imports nothing from the runners."""
