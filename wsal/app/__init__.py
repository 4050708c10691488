"""The composing layer: the one route, CLIs that combine stages."""
