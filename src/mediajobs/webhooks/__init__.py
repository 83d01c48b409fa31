"""Webhooks: endpoints that receive signed notifications of job and media events, with a delivery log."""
