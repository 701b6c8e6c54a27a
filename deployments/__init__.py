"""How flows run: provisioning limits, registering blocks, serving deployments."""
