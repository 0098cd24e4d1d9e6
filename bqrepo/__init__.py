"""bqrepo: a typed, tested, BigQuery-native home for time-series data.

Importing bqrepo connects to nothing and reads no credentials; engines are
created on demand by :func:`bqrepo.engine.create_engine`.
"""

from bqrepo.settings import ConfigurationError, Settings, load_settings

__all__ = ["ConfigurationError", "Settings", "load_settings"]
__version__ = "0.1.0"
