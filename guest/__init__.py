"""The guest client: reads the friend's pad and sends it to the host."""
