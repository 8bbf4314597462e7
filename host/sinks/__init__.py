"""Where applied pad states go: a virtual pad, a log, a JSON-lines file, or nowhere."""
