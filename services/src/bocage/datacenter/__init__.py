"""The datacenter process: settings composition and the services it runs (one or all)."""
