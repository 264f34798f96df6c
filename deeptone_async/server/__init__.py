"""WebSocket streaming server with DeepTone's cloud protocol (``pip install 'deeptone-async[server]'``)."""
