"""The host daemon: receives guests' frames and drives one virtual pad per seat."""
