"""steplab: open force-plate and smart-step lab system."""
__version__ = "0.1.0"
