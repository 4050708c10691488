"""wsal: weakly-supervised spatio-temporal action localization."""

__version__ = "0.1.0"
