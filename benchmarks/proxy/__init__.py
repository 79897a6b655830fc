"""The proxy measured: extraction recall vs compression, the local reader's memory, the proxy's own overhead."""
